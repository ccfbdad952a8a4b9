"""The fake Hub serves dataset repos for download as the real Hub does, to the real huggingface_hub.

A repo shaped like the ExAct benchmark (`Alexhimself/ExAct`: `data/metadata.jsonl` and one `.mp4` per
line under `data/`) is seeded into tests/fakes/hub.py; hf_hub_download and snapshot_download fetch it
from 127.0.0.1 into a temporary cache, never from the network (HF_HUB_DISABLE_XET=1, set in conftest,
keeps them on the plain HTTP route the fake speaks). Each test asserts on the requests the fake saw.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.fakes.hub import FakeHub

REPO = "Alexhimself/ExAct"
# Tiny stand-ins for the benchmark's clips: distinct bytes, an MP4 'ftyp' box at the start.
CLIPS = {f"data/{n:04d}.mp4": b"\x00\x00\x00\x18ftypmp42" + bytes([n]) * (64 + n) for n in (1, 2, 3)}
METADATA = "".join(
    json.dumps({"file_name": Path(path).name, "label": label}) + "\n"
    for path, label in zip(CLIPS, ("squat", "lunge", "plank"), strict=True)
).encode()
FILES = {"data/metadata.jsonl": METADATA, **CLIPS}


@pytest.fixture
def hub(monkeypatch):
    # The local defaults set HF_HUB_OFFLINE=1; a download lifts it, as motioncoach.publish.hub_reachable does.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with FakeHub() as hub:
        hub.add_dataset(REPO, FILES)
        yield hub


def _download(hub: FakeHub, filename: str, cache_dir: Path, repo_id: str = REPO, **options) -> Path:
    options.setdefault("repo_type", "dataset")
    return Path(hf_hub_download(repo_id, filename, endpoint=hub.url, cache_dir=cache_dir, **options))


def test_a_file_and_a_clip_arrive_byte_for_byte_by_the_hubs_own_route(hub, tmp_path):
    commit = hub.repo(REPO, kind="dataset").head
    assert _download(hub, "data/metadata.jsonl", tmp_path).read_bytes() == METADATA
    # A regular file of a public repo: HEAD /resolve answers 307 to the commit-pinned resolve-cache URL,
    # which the client follows for the metadata (X-Repo-Commit, ETag, size) and then GETs.
    cached = f"/api/resolve-cache/datasets/{REPO}/{commit}/data/metadata.jsonl"
    assert [(m, p.split("?")[0]) for m, p in hub.downloads] == [
        ("HEAD", f"/datasets/{REPO}/resolve/main/data/metadata.jsonl"),
        ("HEAD", cached),
        ("GET", cached),
    ]
    hub.downloads.clear()
    assert _download(hub, "data/0002.mp4", tmp_path).read_bytes() == CLIPS["data/0002.mp4"]
    # An LFS file: HEAD /resolve answers 302 to a signed CDN URL on another host; the client takes the
    # metadata from that 302 (X-Linked-Etag, X-Linked-Size) and GETs the CDN without the Hub token.
    [(head, resolve), (get, cdn)] = hub.downloads
    assert (head, resolve) == ("HEAD", f"/datasets/{REPO}/resolve/main/data/0002.mp4")
    assert get == "GET" and cdn.startswith(f"/cdn-lfs/datasets/{REPO}/") and "Signature=" in cdn
    assert not hub.errors  # no token reached the CDN, nothing the fake refused


def test_snapshot_download_with_patterns_fetches_just_the_matching_files(hub, tmp_path):
    folder = Path(
        snapshot_download(
            REPO, repo_type="dataset", endpoint=hub.url, cache_dir=tmp_path, allow_patterns=["data/*.mp4"]
        )
    )
    fetched = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert fetched == CLIPS  # not the metadata, nor the .gitattributes every Hub repo carries
    commit = hub.repo(REPO, kind="dataset").head
    assert folder.name == commit
    calls = [(m, p.split("?")[0]) for m, p in hub.downloads]
    # The revision resolved once, one recursive listing at that commit, then each file pinned to it.
    assert calls[:2] == [("GET", f"/api/datasets/{REPO}/revision/main"), ("GET", f"/api/datasets/{REPO}/tree/{commit}")]
    assert "recursive=true" in hub.downloads[1][1]
    assert sorted(p for m, p in calls if m == "HEAD") == [f"/datasets/{REPO}/resolve/{commit}/{f}" for f in CLIPS]
    assert len([p for m, p in calls if m == "GET" and p.startswith("/cdn-lfs/")]) == len(CLIPS)


def test_a_second_download_is_answered_from_the_cache_with_no_get_of_the_file(hub, tmp_path):
    for name in ("data/metadata.jsonl", "data/0001.mp4"):
        first = _download(hub, name, tmp_path)
        assert len(hub.file_gets(REPO, name)) == 1
        seen = len(hub.downloads)
        again = _download(hub, name, tmp_path)
        assert again == first and again.read_bytes() == FILES[name]
        # Only the metadata HEAD(s) that revalidate the cached copy; no GET of the bytes.
        assert hub.downloads[seen:] and {m for m, _ in hub.downloads[seen:]} == {"HEAD"}
        assert len(hub.file_gets(REPO, name)) == 1


def test_unknown_repos_files_and_revisions_raise_the_hubs_errors(hub, tmp_path):
    with pytest.raises(RepositoryNotFoundError) as unknown:
        _download(hub, "data/metadata.jsonl", tmp_path, repo_id="Alexhimself/NoSuchBenchmark")
    assert unknown.value.response.status_code == 401  # no token: the Hub answers 401, as for a private repo
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("Alexhimself/NoSuchBenchmark", repo_type="dataset", endpoint=hub.url, cache_dir=tmp_path)
    with pytest.raises(EntryNotFoundError):
        _download(hub, "data/9999.mp4", tmp_path)
    with pytest.raises(RevisionNotFoundError):
        _download(hub, "data/0001.mp4", tmp_path, revision="v9")
    # The same name as a model repo is another repo: it is not there.
    with pytest.raises(RepositoryNotFoundError):
        _download(hub, "data/0001.mp4", tmp_path, repo_type="model")


def test_a_private_dataset_needs_the_token_and_hides_its_existence_without_it(hub, tmp_path):
    hub.add_dataset("tester/exact-private", FILES, private=True)
    with pytest.raises(RepositoryNotFoundError) as hidden:
        _download(hub, "data/0001.mp4", tmp_path, repo_id="tester/exact-private")
    # RepoNotFound, not GatedRepo: the Hub answers 401 RepoNotFound for a private repo it will not show.
    assert type(hidden.value) is RepositoryNotFoundError and hidden.value.response.status_code == 401
    assert hidden.value.response.headers["X-Error-Code"] == "RepoNotFound"
    with pytest.raises(HfHubHTTPError) as refused:
        _download(hub, "data/0001.mp4", tmp_path, repo_id="tester/exact-private", token="hf_not_the_token")
    assert not isinstance(refused.value, RepositoryNotFoundError) and refused.value.response.status_code == 401
    for name in ("data/metadata.jsonl", "data/0001.mp4"):
        path = _download(hub, name, tmp_path, repo_id="tester/exact-private", token=hub.token)
        assert path.read_bytes() == FILES[name]
    assert not hub.errors  # the token went to the Hub only, never to the CDN


def test_a_gated_dataset_raises_gated_repo_error_without_a_token(hub, tmp_path):
    hub.add_dataset("tester/exact-gated", FILES, gated="auto")
    with pytest.raises(GatedRepoError):
        _download(hub, "data/0001.mp4", tmp_path, repo_id="tester/exact-gated")
    path = _download(hub, "data/0001.mp4", tmp_path, repo_id="tester/exact-gated", token=hub.token)
    assert path.read_bytes() == CLIPS["data/0001.mp4"]


def test_repo_info_lists_the_files_with_their_lfs_details(hub):
    info = HfApi(endpoint=hub.url).dataset_info(REPO, files_metadata=True)
    siblings = {s.rfilename: s for s in info.siblings}
    assert info.sha == hub.repo(REPO, kind="dataset").head and not info.private
    assert set(siblings) == {".gitattributes", *FILES}
    assert siblings["data/metadata.jsonl"].lfs is None and siblings["data/metadata.jsonl"].size == len(METADATA)
    clip = siblings["data/0003.mp4"]
    assert clip.size == len(CLIPS["data/0003.mp4"]) and clip.lfs is not None and clip.lfs.size == clip.size
