"""A fake Hugging Face Hub on 127.0.0.1 that speaks the HTTP API huggingface_hub's HfApi uses.

Covered: whoami-v2, repos/create, validate-yaml, repo info, preupload, the Git LFS batch API
(upload by PUT, then verify) and commit. Like the real Hub, preupload answers "lfs" for weights
(`*.safetensors`, `*.bin`, `*.pt`), images and anything over 10 MB, and "regular" (base64 in the
ndjson commit) for small text files; a regular line for an LFS file, or an `lfsFile` line whose
object was never uploaded or does not match its sha256, is refused. The Xet route is not spoken:
its token endpoint answers 501, so tests set HF_HUB_DISABLE_XET=1 and huggingface_hub takes LFS.
A wrong token gets 401 everywhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_REPO = r"(?P<kind>models|datasets)/(?P<repo>[^/]+/[^/]+)"
_ROUTES = (
    ("GET", re.compile(r"^/api/whoami-v2$"), "whoami"),
    ("POST", re.compile(r"^/api/repos/create$"), "create"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate"),
    ("POST", re.compile(rf"^/api/{_REPO}/preupload/(?P<rev>[^/?]+)"), "preupload"),
    ("POST", re.compile(rf"^/api/{_REPO}/commit/(?P<rev>[^/?]+)"), "commit"),
    ("GET", re.compile(rf"^/api/{_REPO}/xet-write-token/(?P<rev>[^/?]+)"), "xet"),
    ("GET", re.compile(rf"^/api/{_REPO}(?:/revision/(?P<rev>[^/?]+))?(?:\?.*)?$"), "info"),
    ("POST", re.compile(r"^/(?:(?P<kind>datasets)/)?(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch$"), "lfs_batch"),
    ("PUT", re.compile(r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$"), "lfs_put"),
    ("POST", re.compile(r"^/lfs-verify/(?P<oid>[0-9a-f]{64})$"), "lfs_verify"),
)
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".png", ".jpg", ".jpeg", ".webp", ".gif")
LFS_MIN_BYTES = 10 * 1024 * 1024


WRITE_ROUTES = {"create", "preupload", "commit", "lfs_batch"}


@dataclass
class Repo:
    kind: str  # "model" or "dataset"
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict] = field(default_factory=list)


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

    def fail_next(self, route: str, *statuses: int) -> None:
        """Answer the next requests to route ('create', 'preupload', 'commit', ...) with these statuses."""
        self.faults[route].extend(statuses)

    def repo(self, repo_id: str, kind: str = "model") -> Repo:
        return self.repos[f"{kind}:{repo_id}"]

    # --- protocol ----------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict]:
        found = next(((r, m) for verb, pattern, r in _ROUTES if verb == method and (m := pattern.match(path))), None)
        if found is None:
            return 404, {"error": f"fake hub: no route for {method} {path}"}
        route, match = found
        with self._lock:
            self.calls[route] += 1
            if self.faults[route]:
                status = self.faults[route].pop(0)
                return status, {"error": f"injected {status}"}
        # The upload href stands for a presigned storage URL: no Hub token is sent there.
        if route != "lfs_put" and headers.get("authorization") != f"Bearer {self.token}":
            with self._lock:
                self.rejected_tokens += 1
            return 401, {"error": "Invalid credentials in Authorization header"}
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

    def _info(self, params, payload, body) -> tuple[int, dict]:
        repo = self.repos.get(f"{params['kind'][:-1]}:{params['repo']}")
        if repo is None:
            return 404, {"error": "Repository not found"}
        sha = repo.commits[-1]["oid"] if repo.commits else "0" * 40
        return 200, {"id": params["repo"], "sha": sha, "private": repo.private, "siblings": []}

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
        repo = self.repos.get(f"{params['kind'][:-1]}:{params['repo']}")
        if repo is None:
            return 404, {"error": "Repository not found"}
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        added = {}
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
            elif line["key"] != "header":
                self.errors.append(f"unsupported commit line {line['key']}")
                return 400, {"error": f"fake hub: unsupported commit line {line['key']}"}
        oid = hashlib.sha1(json.dumps(sorted(added)).encode() + str(len(repo.commits)).encode()).hexdigest()
        with self._lock:
            repo.files.update(added)
            repo.commits.append({"oid": oid, "summary": header["summary"], "files": sorted(added)})
        prefix = "datasets/" if repo.kind == "dataset" else ""
        return 200, {
            "commitUrl": f"{self.url}/{prefix}{params['repo']}/commit/{oid}",
            "commitOid": oid,
            "success": True,
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve("GET")

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
            status, reply = fake.handle(method, self.path, self.headers, body)
        except Exception as exc:  # a bug in the fake: fail loudly, not retryably
            fake.errors.append(repr(exc))
            status, reply = 400, {"error": f"fake hub: {exc!r}"}
        payload = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _read_chunked(self) -> bytes:
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)

    def log_message(self, format: str, *args) -> None:
        pass
