"""A fake Hugging Face Hub on 127.0.0.1 that speaks the HTTP API huggingface_hub's HfApi uses.

Uploads: whoami-v2, repos/create, validate-yaml, repo info, preupload, the Git LFS batch API
(upload by PUT, then verify) and commit. Like the real Hub, preupload answers "lfs" for weights
(`*.safetensors`, `*.bin`, `*.pt`), images and anything over 10 MB, and "regular" (base64 in the
ndjson commit) for small text files; a regular line for an LFS file, or an `lfsFile` line whose
object was never uploaded or does not match its sha256, is refused. The Xet route is not spoken:
its token endpoint answers 501, so tests set HF_HUB_DISABLE_XET=1 and huggingface_hub takes LFS.

Downloads, of model and dataset repos alike (`add_dataset` / `add_repo` seed one; an upload's
commits are served too), the way huggingface_hub 1.33's hf_hub_download and snapshot_download
meet the real Hub:

- `GET /api/{models|datasets}/{repo}[/revision/{rev}]`: repo info with `sha` and `siblings`
  (`?blobs=true` adds sizes, blob ids and LFS details); `GET .../tree/{rev}[/{path}]` (with
  `?recursive=true`, paged by a `Link: rel="next"` header) and `POST .../paths-info/{rev}`.
- `HEAD|GET /[datasets/]{repo}/resolve/{rev}/{path}`: a file tracked by Git LFS (the Hub's
  default `.gitattributes`: `.mp4` and other media, archives, weights...; or anything over 10 MB)
  answers 302 to a signed CDN URL on another host (`http://localhost:{port}/cdn-lfs/...`, the
  same server under another name, so the client treats it as off-Hub and drops the token) with
  `X-Repo-Commit`, `X-Linked-Etag` (its sha256) and `X-Linked-Size`. A regular file of a public
  repo answers 307 to `/api/resolve-cache/.../{commit}/{path}` (relative, which the client
  follows), which serves it with `X-Repo-Commit`, `ETag` (its git blob id) and `Content-Length`;
  one of a private or gated repo is served straight from /resolve. Byte ranges are honoured.
- Errors carry the Hub's `X-Error-Code`: an unknown repo, or a private one asked without the
  token, is `RepoNotFound` (401 without a token, 404 with one: the Hub never says a private repo
  exists); a missing file is 404 `EntryNotFound` with `X-Repo-Commit`; an unknown revision 404
  `RevisionNotFound`; a gated repo's files without a token 401 `GatedRepo`. A model repo is never
  served as a dataset of the same name, nor the other way round.

Public repos need no token; a wrong token gets 401 ("Invalid credentials in Authorization
header") everywhere, and a token sent to the CDN is refused (400) and listed in `errors`. Every
download request (repo info, tree, paths-info, resolve, resolve-cache, CDN) is appended to
`downloads` as (method, path) in arrival order; `file_gets` picks out the GETs of one file.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import mimetypes
import os
import re
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

_REPO = r"(?P<kind>models|datasets)/(?P<repo>[^/?]+/[^/?]+)"
_Q = r"(?:\?.*)?$"  # an optional query string
_FILE = r"(?P<rev>[^/?]+)/(?P<path>[^?]+)"  # a revision, then a path in the repo
_ROUTES = (
    ("GET", re.compile(r"^/api/whoami-v2$"), "whoami"),
    ("POST", re.compile(r"^/api/repos/create$"), "create"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate"),
    ("POST", re.compile(rf"^/api/{_REPO}/preupload/(?P<rev>[^/?]+)"), "preupload"),
    ("POST", re.compile(rf"^/api/{_REPO}/commit/(?P<rev>[^/?]+)"), "commit"),
    ("GET", re.compile(rf"^/api/{_REPO}/xet-write-token/(?P<rev>[^/?]+)"), "xet"),
    ("GET", re.compile(rf"^/api/{_REPO}/tree/(?P<rev>[^/?]+)(?:/(?P<path>[^?]*))?{_Q}"), "tree"),
    ("POST", re.compile(rf"^/api/{_REPO}/paths-info/(?P<rev>[^/?]+){_Q}"), "paths_info"),
    ("GET", re.compile(rf"^/api/{_REPO}(?:/revision/(?P<rev>[^/?]+))?{_Q}"), "info"),
    *(
        (verb, pattern, route)
        for verb in ("GET", "HEAD")
        for pattern, route in (
            (re.compile(rf"^/api/resolve-cache/{_REPO}/(?P<rev>[0-9a-f]{{40}})/(?P<path>[^?]+){_Q}"), "resolve_cache"),
            (re.compile(rf"^/(?:(?P<kind>datasets)/)?(?P<repo>[^/?]+/[^/?]+)/resolve/{_FILE}{_Q}"), "resolve"),
            (re.compile(rf"^/cdn-lfs/{_REPO}/(?P<oid>[0-9a-f]{{64}}){_Q}"), "cdn"),
        )
    ),
    ("POST", re.compile(r"^/(?:(?P<kind>datasets)/)?(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch$"), "lfs_batch"),
    ("PUT", re.compile(r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$"), "lfs_put"),
    ("POST", re.compile(r"^/lfs-verify/(?P<oid>[0-9a-f]{64})$"), "lfs_verify"),
)  # fmt: skip
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".png", ".jpg", ".jpeg", ".webp", ".gif")
LFS_MIN_BYTES = 10 * 1024 * 1024
# The .gitattributes the Hub writes into a new dataset repo: what it tracks with Git LFS.
DATASET_LFS_PATTERNS = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*", "*.lz4",
    "*.mds", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb",
    "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar",
    "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*",
    "*.pcm", "*.sam", "*.raw", "*.aac", "*.flac", "*.mp3", "*.ogg", "*.wav",
    "*.bmp", "*.gif", "*.png", "*.tiff", "*.jpg", "*.jpeg", "*.webp", "*.mkv", "*.mp4", "*.webm",
)  # fmt: skip
EMPTY_COMMIT = "0" * 40  # what a repo created but never committed to reports as its sha


WRITE_ROUTES = {"create", "preupload", "commit", "lfs_batch"}
READ_ROUTES = {"info", "tree", "paths_info", "resolve", "resolve_cache", "cdn"}  # recorded in `downloads`
BAD_TOKEN_MESSAGE = "Invalid credentials in Authorization header"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def git_blob_id(content: bytes) -> str:
    """The git object id of a file: what the Hub sends as the ETag of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(content: bytes) -> bytes:
    """The Git LFS pointer git stores in place of an LFS-tracked file."""
    sha = hashlib.sha256(content).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(content)}\n".encode()


def gitattributes(patterns=DATASET_LFS_PATTERNS) -> bytes:
    return "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in patterns).encode()


@dataclass
class Repo:
    kind: str  # "model" or "dataset"
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)  # at the head commit
    commits: list[dict] = field(default_factory=list)  # {"oid", "summary", "files", "date"}, oldest first
    gated: bool | str = False  # False, "auto" or "manual": the files then need a token (the fake's is granted)
    trees: dict[str, dict[str, bytes]] = field(default_factory=lambda: {EMPTY_COMMIT: {}})  # commit -> files
    lfs_at: dict[str, frozenset[str]] = field(default_factory=lambda: {EMPTY_COMMIT: frozenset()})  # LFS paths
    created_at: str = field(default_factory=_now)

    @property
    def head(self) -> str:
        return self.commits[-1]["oid"] if self.commits else EMPTY_COMMIT

    def resolve(self, revision: str) -> str | None:
        """The commit a revision names: "main" or a commit sha of this repo."""
        return self.head if revision == "main" else revision if revision in self.trees else None


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: object  # the request's headers (an email.message.Message)
    authed: bool  # carries the fake's own token


def _json(status: int, value, **headers: str) -> _Reply:
    return _Reply(status, json.dumps(value).encode(), {"Content-Type": "application/json", **headers})


def _hub_error(status: int, code: str, message: str, **headers: str) -> _Reply:
    """An error as the Hub words it: huggingface_hub's hf_raise_for_status reads X-Error-Code."""
    return _json(status, {"error": message}, **{"X-Error-Code": code, "X-Error-Message": message, **headers})


def _bad_token() -> _Reply:
    return _json(401, {"error": BAD_TOKEN_MESSAGE}, **{"X-Error-Message": BAD_TOKEN_MESSAGE})


class FakeHub:
    """Context-managed server. faults: {route: [status, ...]} answered, in order, before the real reply."""

    def __init__(self, token: str = "hf_fake_valid_token_0123456789", user: str = "tester", role: str = "write"):
        self.token = token
        self.user = user
        self.role = role  # the token's: "write", or "read" (the Hub then refuses every write with 403)
        self.repos: dict[str, Repo] = {}
        self.faults: dict[str, list[int]] = defaultdict(list)
        self.calls: Counter[str] = Counter()
        self.rejected_tokens = 0
        self.errors: list[str] = []
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> bytes PUT through the LFS route
        self.downloads: list[tuple[str, str]] = []  # (method, path with its query) of every download request
        self.tree_page_size = 1000  # entries per page of a tree listing, as on the Hub
        self._cdn_objects: dict[tuple[str, str], bytes] = {}  # (repo key, sha256) -> an LFS file's bytes
        self._secret = os.urandom(16)  # signs the CDN URLs
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    def __enter__(self) -> FakeHub:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self  # type: ignore[attr-defined]
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "use the fake as a context manager"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        """The same server under another host name: to huggingface_hub a CDN off the Hub."""
        assert self._httpd is not None, "use the fake as a context manager"
        return f"http://localhost:{self._httpd.server_address[1]}"

    def fail_next(self, route: str, *statuses: int) -> None:
        """Answer the next requests to route ('create', 'preupload', 'commit', 'resolve', ...) with these statuses."""
        self.faults[route].extend(statuses)

    def repo(self, repo_id: str, kind: str = "model") -> Repo:
        return self.repos[f"{kind}:{repo_id}"]

    # --- seeding -------------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        kind: str = "model",
        private: bool = False,
        gated: bool | str = False,
        with_gitattributes: bool = True,
        summary: str = "Upload files",
    ) -> str:
        """Commit files to a repo, creating it (with the Hub's default .gitattributes, unless told not to) if
        new; returns the commit sha. A file is tracked by Git LFS as the Hub would track it."""
        key = f"{kind}:{repo_id}"
        with self._lock:
            repo = self.repos.get(key)
            if repo is None:
                repo = self.repos[key] = Repo(kind=kind, private=private, gated=gated)
                if with_gitattributes and ".gitattributes" not in files:
                    files = {".gitattributes": gitattributes(), **files}
            lfs = {path for path, content in files.items() if self.tracked_by_lfs(kind, path, len(content))}
            return self._record_commit(key, repo, dict(files), lfs, summary)

    def add_dataset(self, repo_id: str, files: dict[str, bytes], **options) -> str:
        """Seed a dataset repo (see add_repo for the options: private, gated, with_gitattributes, summary)."""
        return self.add_repo(repo_id, files, kind="dataset", **options)

    @staticmethod
    def tracked_by_lfs(kind: str, path: str, size: int) -> bool:
        """What a repo seeded here keeps in Git LFS: the default .gitattributes of its kind, and the 10 MB rule."""
        if kind != "dataset":
            return FakeHub.is_lfs(path, size)
        name = path.rsplit("/", 1)[-1]  # a pattern without a slash matches the name in any folder, as in git
        return size > LFS_MIN_BYTES or any(
            fnmatch.fnmatch(path, p.replace("**/", "")) if "/" in p else fnmatch.fnmatch(name, p)
            for p in DATASET_LFS_PATTERNS
        )

    def _record_commit(self, key: str, repo: Repo, added: dict[str, bytes], lfs: set[str], summary: str) -> str:
        """Under the lock: a new head commit adding these files."""
        digest = hashlib.sha1(f"{key}\n{repo.head}\n{len(repo.commits)}".encode())
        for path in sorted(added):
            digest.update(f"{path}\n{hashlib.sha256(added[path]).hexdigest()}\n".encode())
        oid = digest.hexdigest()
        lfs_paths = (set(repo.lfs_at[repo.head]) - set(added)) | lfs
        repo.files.update(added)
        repo.trees[oid] = dict(repo.files)
        repo.lfs_at[oid] = frozenset(lfs_paths)
        repo.commits.append({"oid": oid, "summary": summary, "files": sorted(added), "date": _now()})
        for path in lfs:
            self._cdn_objects[(key, hashlib.sha256(added[path]).hexdigest())] = added[path]
        return oid

    def file_gets(self, repo_id: str, filename: str, kind: str = "dataset") -> list[str]:
        """The GET requests (paths) that asked for this file: at /resolve, /api/resolve-cache or the CDN."""
        repo = self.repos.get(f"{kind}:{repo_id}")
        trees = repo.trees.values() if repo else ()
        shas = {hashlib.sha256(tree[filename]).hexdigest() for tree in trees if filename in tree}
        prefix, name, repo_re = ("datasets/" if kind == "dataset" else ""), re.escape(filename), re.escape(repo_id)
        resolve = re.compile(rf"/{prefix}{repo_re}/resolve/[^/]+/{name}")
        cached = re.compile(rf"/api/resolve-cache/{kind}s/{repo_re}/[0-9a-f]{{40}}/{name}")
        cdn = re.compile(rf"/cdn-lfs/{kind}s/{repo_re}/(?P<oid>[0-9a-f]{{64}})")
        with self._lock:
            requests = list(self.downloads)
        found = []
        for method, path in requests:
            bare = unquote(path.split("?", 1)[0])
            if method == "GET" and (
                resolve.fullmatch(bare) or cached.fullmatch(bare) or ((m := cdn.fullmatch(bare)) and m["oid"] in shas)
            ):
                found.append(path)
        return found

    # --- protocol ----------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict] | _Reply:
        found = next(((r, m) for verb, pattern, r in _ROUTES if verb == method and (m := pattern.match(path))), None)
        if found is None:
            return 404, {"error": f"fake hub: no route for {method} {path}"}
        route, match = found
        with self._lock:
            self.calls[route] += 1
            if route in READ_ROUTES:
                self.downloads.append((method, path))
            if self.faults[route]:
                status = self.faults[route].pop(0)
                return status, {"error": f"injected {status}"}
        authorization = headers.get("authorization")
        authed = authorization == f"Bearer {self.token}"
        if route in READ_ROUTES:
            # Public repos need no token, but a wrong one is refused even there; the CDN judges for itself.
            if route != "cdn" and authorization is not None and not authed:
                with self._lock:
                    self.rejected_tokens += 1
                return _bad_token()
            request = _Request(method, path, parse_qs(urlsplit(path).query, keep_blank_values=True), headers, authed)
            return getattr(self, f"_{route}")(match.groupdict(), request, body)
        # The upload href stands for a presigned storage URL: no Hub token is sent there.
        if route != "lfs_put" and not authed:
            with self._lock:
                self.rejected_tokens += 1
            return _bad_token()
        if self.role == "read" and route in WRITE_ROUTES:
            with self._lock:
                self.errors.append(f"{route} with a read token")
            return 403, {"error": "You don't have the rights to create a model under this namespace"}
        params = match.groupdict()
        payload = json.loads(body) if body and route not in ("commit", "lfs_put") else None
        return getattr(self, f"_{route}")(params, payload, body)

    def _xet(self, params, payload, body) -> tuple[int, dict]:
        self.errors.append("xet-write-token requested: set HF_HUB_DISABLE_XET=1 to use Git LFS")
        return 501, {"error": "fake hub: the Xet route is not spoken; set HF_HUB_DISABLE_XET=1"}

    def _lfs_batch(self, params, payload, body) -> tuple[int, dict]:
        kind = "dataset" if params.get("kind") else "model"
        if f"{kind}:{params['repo']}" not in self.repos:
            return 404, {"error": "Repository not found"}
        if payload.get("operation") != "upload" or payload.get("hash_algo", "sha256") != "sha256":
            return 422, {"error": "only sha256 uploads"}
        objects = []
        for obj in payload["objects"]:
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs_objects:  # a stored object gets no "actions": nothing to upload
                answer["actions"] = {
                    "upload": {"href": f"{self.url}/lfs-upload/{obj['oid']}", "header": {}},
                    "verify": {"href": f"{self.url}/lfs-verify/{obj['oid']}", "header": {}},
                }
            objects.append(answer)
        return 200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}

    def _lfs_put(self, params, payload, body) -> tuple[int, dict]:
        if hashlib.sha256(body).hexdigest() != params["oid"]:
            self.errors.append(f"LFS object {params['oid']} arrived with other content")
            return 400, {"error": "sha256 mismatch"}
        with self._lock:
            self.lfs_objects[params["oid"]] = body
        return 200, {}

    def _lfs_verify(self, params, payload, body) -> tuple[int, dict]:
        stored = self.lfs_objects.get(params["oid"])
        if stored is None or len(stored) != payload.get("size"):
            return 404, {"error": "object not uploaded"}
        return 200, {}

    @staticmethod
    def is_lfs(path: str, size: int) -> bool:
        """What the real Hub routes through LFS (its .gitattributes and the 10 MB rule)."""
        return path.lower().endswith(LFS_SUFFIXES) or size > LFS_MIN_BYTES

    def _whoami(self, params, payload, body) -> tuple[int, dict]:
        token = {"displayName": "motioncoach", "role": self.role}
        auth = {"type": "access_token", "accessToken": token}
        return 200, {"type": "user", "name": self.user, "orgs": [], "auth": auth}

    def _create(self, params, payload, body) -> tuple[int, dict]:
        repo_id = f"{payload.get('organization') or self.user}/{payload['name']}"
        kind = payload.get("type") or "model"
        key = f"{kind}:{repo_id}"
        prefix = "datasets/" if kind == "dataset" else ""
        with self._lock:
            if key in self.repos:
                return 409, {"error": "You already created this repo", "url": f"{self.url}/{prefix}{repo_id}"}
            self.repos[key] = Repo(
                kind=kind, private=payload.get("visibility") == "private" or bool(payload.get("private"))
            )
        return 200, {"url": f"{self.url}/{prefix}{repo_id}", "name": repo_id}

    def _validate(self, params, payload, body) -> tuple[int, dict]:
        content = payload.get("content", "")
        if not content.startswith("---\n"):
            return 400, {"errors": [{"message": "README.md has no YAML metadata block"}], "warnings": []}
        return 200, {"errors": [], "warnings": []}

    def _preupload(self, params, payload, body) -> tuple[int, dict]:
        if f"{params['kind'][:-1]}:{params['repo']}" not in self.repos:
            return 404, {"error": "Repository not found"}
        files = [
            {
                "path": f["path"],
                "uploadMode": "lfs" if self.is_lfs(f["path"], int(f.get("size", 0))) else "regular",
                "shouldIgnore": False,
                "oid": None,
            }
            for f in payload["files"]
        ]
        return 200, {"files": files, "commitOid": "0" * 40}

    def _commit(self, params, payload, body) -> tuple[int, dict]:
        key = f"{params['kind'][:-1]}:{params['repo']}"
        repo = self.repos.get(key)
        if repo is None:
            return 404, {"error": "Repository not found"}
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        added, lfs = {}, set()
        for line in lines:
            value = line["value"]
            if line["key"] == "file":
                content = base64.b64decode(value["content"])
                if self.is_lfs(value["path"], len(content)):
                    self.errors.append(f"{value['path']} committed inline; the Hub takes it through LFS only")
                    return 400, {"error": f"{value['path']} must be uploaded with Git LFS"}
                added[value["path"]] = content
            elif line["key"] == "lfsFile":
                stored = self.lfs_objects.get(value["oid"])
                if stored is None:
                    self.errors.append(f"lfsFile {value['path']} refers to an object never uploaded")
                    return 422, {"error": f"LFS object {value['oid']} not found"}
                added[value["path"]] = stored
                lfs.add(value["path"])
            elif line["key"] != "header":
                self.errors.append(f"unsupported commit line {line['key']}")
                return 400, {"error": f"fake hub: unsupported commit line {line['key']}"}
        with self._lock:
            oid = self._record_commit(key, repo, added, lfs, header["summary"])
        prefix = "datasets/" if repo.kind == "dataset" else ""
        return 200, {
            "commitUrl": f"{self.url}/{prefix}{params['repo']}/commit/{oid}",
            "commitOid": oid,
            "success": True,
        }

    # --- downloads ---------------------------------------------------------------------------

    def _readable(self, kind: str, repo_id: str, request: _Request, *, content: bool) -> Repo | _Reply:
        """The repo, if this request may read it (its files, where content), else the Hub's refusal."""
        repo = self.repos.get(f"{kind}:{repo_id}")
        if repo is None or (repo.private and not request.authed):
            # 401 without a token, 404 with one; a private repo is answered as if it did not exist.
            return _hub_error(404 if request.authed else 401, "RepoNotFound", "Repository not found")
        if content and repo.gated and not request.authed:
            return _hub_error(
                401,
                "GatedRepo",
                f"Access to {kind} {repo_id} is restricted. You must have access to it and be authenticated to "
                "access it. Please log in.",
            )
        return repo

    def _at(self, params, request: _Request, *, content: bool) -> tuple[Repo, str, str] | _Reply:
        """(repo, kind, commit) of a request naming a repo and a revision, else the Hub's refusal."""
        kind = (params.get("kind") or "models")[:-1]
        repo = self._readable(kind, params["repo"], request, content=content)
        if isinstance(repo, _Reply):
            return repo
        revision = unquote(params.get("rev") or "main")
        commit = repo.resolve(revision)
        if commit is None:
            return _hub_error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return repo, kind, commit

    def _info(self, params, request: _Request, body) -> _Reply:
        found = self._at(params, request, content=False)
        if isinstance(found, _Reply):
            return found
        repo, kind, commit = found
        tree = repo.trees[commit]
        blobs = request.query.get("blobs", ["false"])[-1].lower() in ("true", "1")
        siblings = []
        for path in sorted(tree):
            sibling = {"rfilename": path}
            if blobs:
                entry = self._entry(repo, commit, path, expand=False)
                sibling.update(size=entry["size"], blobId=entry["oid"])
                if "lfs" in entry:
                    lfs = entry["lfs"]
                    sibling["lfs"] = {"size": lfs["size"], "sha256": lfs["oid"], "pointerSize": lfs["pointerSize"]}
            siblings.append(sibling)
        last = next((c for c in reversed(repo.commits) if c["oid"] == commit), None)
        info = {
            "_id": hashlib.md5(f"{kind}:{params['repo']}".encode()).hexdigest()[:24],
            "id": params["repo"],
            "author": params["repo"].split("/")[0],
            "sha": commit,
            "lastModified": last["date"] if last else repo.created_at,
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(len(c) for c in tree.values()),
        }
        if expand := request.query.get("expand"):
            info = {k: v for k, v in info.items() if k in ("_id", "id", *expand)}
        return _json(200, info)

    def _entry(self, repo: Repo, commit: str, path: str, *, expand: bool) -> dict:
        """A tree entry, as /tree and /paths-info list it."""
        tree = repo.trees[commit]
        if path in tree:
            content = tree[path]
            if path in repo.lfs_at[commit]:
                pointer = lfs_pointer(content)
                sha = hashlib.sha256(content).hexdigest()
                entry = {"type": "file", "oid": git_blob_id(pointer), "size": len(content), "path": path}
                entry["lfs"] = {"oid": sha, "size": len(content), "pointerSize": len(pointer)}
            else:
                entry = {"type": "file", "oid": git_blob_id(content), "size": len(content), "path": path}
            touched = [path]
        else:
            touched = sorted(p for p in tree if p.startswith(path + "/"))
            listing = "".join(f"{p}\n{git_blob_id(tree[p])}\n" for p in touched).encode()
            entry = {"type": "directory", "oid": hashlib.sha1(listing).hexdigest(), "size": 0, "path": path}
        if expand:
            upto = repo.commits[: self._index(repo, commit) + 1]
            last = next((c for c in reversed(upto) if set(c["files"]) & set(touched)), None)
            if last is not None:
                entry["lastCommit"] = {"id": last["oid"], "title": last["summary"], "date": last["date"]}
        return entry

    @staticmethod
    def _index(repo: Repo, commit: str) -> int:
        return next((i for i, c in enumerate(repo.commits) if c["oid"] == commit), -1)

    @staticmethod
    def _folders(tree: dict[str, bytes]) -> set[str]:
        return {path.rsplit("/", n)[0] for path in tree for n in range(1, path.count("/") + 1)}

    def _tree(self, params, request: _Request, body) -> _Reply:
        found = self._at(params, request, content=False)
        if isinstance(found, _Reply):
            return found
        repo, kind, commit = found
        tree, folder = repo.trees[commit], unquote(params.get("path") or "").strip("/")
        folders = self._folders(tree)
        if folder and folder not in folders:
            return _hub_error(404, "EntryNotFound", f"{folder} does not exist on {commit}", **{"X-Repo-Commit": commit})
        recursive = request.query.get("recursive", ["false"])[-1].lower() in ("true", "1")
        expand = request.query.get("expand", ["false"])[-1].lower() in ("true", "1")
        start = len(folder) + 1 if folder else 0
        paths = sorted(
            (p not in folders, p)
            for p in folders | set(tree)
            if (not folder or p.startswith(folder + "/")) and (recursive or "/" not in p[start:])
        )
        cursor = int(request.query.get("cursor", ["0"])[-1])
        page = paths[cursor : cursor + self.tree_page_size]
        headers = {}
        if cursor + self.tree_page_size < len(paths):
            query = {k: v[-1] for k, v in request.query.items()} | {"cursor": str(cursor + self.tree_page_size)}
            headers["Link"] = f'<{self.url}{urlsplit(request.path).path}?{urlencode(query)}>; rel="next"'
        return _json(200, [self._entry(repo, commit, p, expand=expand) for _, p in page], **headers)

    def _paths_info(self, params, request: _Request, body: bytes) -> _Reply:
        found = self._at(params, request, content=False)
        if isinstance(found, _Reply):
            return found
        repo, kind, commit = found
        form = parse_qs(body.decode(), keep_blank_values=True)
        expand = form.get("expand", ["false"])[-1].lower() in ("true", "1")
        known = set(repo.trees[commit]) | self._folders(repo.trees[commit])
        paths = [p.strip("/") for p in form.get("paths", [])]
        return _json(200, [self._entry(repo, commit, p, expand=expand) for p in paths if p in known])

    def _resolve(self, params, request: _Request, body) -> _Reply:
        found = self._at(params, request, content=True)
        if isinstance(found, _Reply):
            return found
        repo, kind, commit = found
        path = unquote(params["path"])
        content = repo.trees[commit].get(path)
        if content is None:
            return _hub_error(404, "EntryNotFound", "Entry not found", **{"X-Repo-Commit": commit})
        headers = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes", "Content-Type": "text/plain; charset=utf-8"}
        if path in repo.lfs_at[commit]:
            sha = hashlib.sha256(content).hexdigest()
            location = self._cdn_location(kind, params["repo"], sha, path)
            headers |= {
                "Location": location,
                "ETag": f'"{git_blob_id(lfs_pointer(content))}"',
                "X-Linked-Etag": f'"{sha}"',
                "X-Linked-Size": str(len(content)),
            }
            return _Reply(302, f"Found. Redirecting to {location}".encode(), headers)
        if not repo.private and not repo.gated:
            etag = f'"{git_blob_id(content)}"'
            location = f"/api/resolve-cache/{kind}s/{params['repo']}/{commit}/{quote(path)}?{urlencode({'etag': etag})}"
            headers["Location"] = location
            return _Reply(307, f"Temporary Redirect. Redirecting to {location}".encode(), headers)
        return self._file(request, content, path, etag=f'"{git_blob_id(content)}"', commit=commit)

    def _resolve_cache(self, params, request: _Request, body) -> _Reply:
        found = self._at(params, request, content=True)
        if isinstance(found, _Reply):
            return found
        repo, kind, commit = found
        path = unquote(params["path"])
        content = repo.trees[commit].get(path)
        if content is None or path in repo.lfs_at[commit]:
            return _hub_error(404, "EntryNotFound", "Entry not found", **{"X-Repo-Commit": commit})
        return self._file(request, content, path, etag=f'"{git_blob_id(content)}"', commit=commit)

    def _cdn_location(self, kind: str, repo_id: str, sha: str, path: str) -> str:
        name = path.rsplit("/", 1)[-1]
        disposition = f"inline; filename*=UTF-8''{quote(name)}; filename=\"{name}\";"
        cdn_path = f"/cdn-lfs/{kind}s/{repo_id}/{sha}"
        expires = str(int(time.time()) + 3600)
        query = {"response-content-disposition": disposition, "Expires": expires}
        query["Signature"] = self._signature(cdn_path, expires, disposition)
        return f"{self.cdn_url}{cdn_path}?{urlencode(query)}"

    def _signature(self, cdn_path: str, expires: str, disposition: str) -> str:
        return hmac.new(self._secret, f"{cdn_path}\n{expires}\n{disposition}".encode(), hashlib.sha256).hexdigest()

    def _cdn(self, params, request: _Request, body) -> _Reply:
        """The CDN a signed URL points at: no Hub token wanted, only a valid, unexpired signature."""
        if request.headers.get("authorization"):
            with self._lock:
                self.errors.append(f"a Hub token was sent to the CDN: {request.method} {request.path}")
            return _Reply(400, b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed"
                          b"</Message></Error>", {"Content-Type": "application/xml"})  # fmt: skip
        query = {k: v[-1] for k, v in request.query.items()}
        cdn_path = urlsplit(request.path).path
        disposition, expires = query.get("response-content-disposition", ""), query.get("Expires", "0")
        signature = self._signature(cdn_path, expires, disposition)
        if not hmac.compare_digest(signature, query.get("Signature", "")) or int(expires) < time.time():
            return _Reply(403, b"<Error><Code>AccessDenied</Code></Error>", {"Content-Type": "application/xml"})
        content = self._cdn_objects.get((f"{params['kind'][:-1]}:{params['repo']}", params["oid"]))
        if content is None:
            return _Reply(404, b"<Error><Code>NoSuchKey</Code></Error>", {"Content-Type": "application/xml"})
        return self._file(request, content, "", etag=f'"{params["oid"]}"', commit=None, disposition=disposition)

    @staticmethod
    def _file(
        request: _Request, content: bytes, path: str, *, etag: str, commit: str | None, disposition: str | None = None
    ) -> _Reply:
        """A file's bytes (a byte range of them where asked), with the headers a download reads."""
        name = path.rsplit("/", 1)[-1]
        kind = mimetypes.guess_type(name)[0] if name else None
        if kind is None:
            try:
                content.decode("utf-8")
                kind = "text/plain; charset=utf-8"
            except UnicodeDecodeError:
                kind = "application/octet-stream"
        headers = {
            "Content-Type": kind,
            "Content-Disposition": disposition or f"inline; filename*=UTF-8''{quote(name)}; filename=\"{name}\";",
            "ETag": etag,
            "Accept-Ranges": "bytes",
        }
        if commit is not None:
            headers["X-Repo-Commit"] = commit
        wanted = request.headers.get("range")
        if not wanted:
            return _Reply(200, content, headers)
        size = len(content)
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted.strip())
        if match is None or not any(match.groups()):
            return _Reply(416, b"", headers | {"Content-Range": f"bytes */{size}"})
        first, last = match.groups()
        start = int(first) if first else max(size - int(last), 0)
        end = min(int(last), size - 1) if first and last else size - 1
        if start >= size or start > end:
            return _Reply(416, b"", headers | {"Content-Range": f"bytes */{size}"})
        return _Reply(206, content[start : end + 1], headers | {"Content-Range": f"bytes {start}-{end}/{size}"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        fake: FakeHub = self.server.fake  # type: ignore[attr-defined]
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = self._read_chunked()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            reply = fake.handle(method, self.path, self.headers, body)
        except Exception as exc:  # a bug in the fake: fail loudly, not retryably
            fake.errors.append(repr(exc))
            reply = 400, {"error": f"fake hub: {exc!r}"}
        if not isinstance(reply, _Reply):
            reply = _json(*reply)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))  # for HEAD: what GET would send
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(reply.body)

    def _read_chunked(self) -> bytes:
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)

    def log_message(self, format: str, *args) -> None:
        pass
