"""Fashion-MNIST download path against a loopback HTTP server (these machines have no internet)."""

import gzip
import hashlib
import http.server
import threading

import pytest

from longtail.data import fetch
from longtail.errors import LongtailError


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(served), **k)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def _files(served, content=b"idx-bytes"):
    files = {}
    for name in ("a-idx1-ubyte.gz", "b-idx3-ubyte.gz"):
        (served / name).write_bytes(gzip.compress(content + name.encode()))
        files[name] = hashlib.sha256(content + name.encode()).hexdigest()
    return files


def test_download_verifies_and_lands_atomically(server, tmp_path):
    served, url = server
    files = _files(served)
    dest = fetch.download(url, tmp_path / "dest", files)
    assert sorted(p.name for p in dest.iterdir()) == sorted(files)
    assert fetch.has_files(dest, files)


def test_hash_mismatch_is_refused_and_nothing_lands(server, tmp_path):
    served, url = server
    files = _files(served)
    files["b-idx3-ubyte.gz"] = "0" * 64
    with pytest.raises(LongtailError, match="failed verification"):
        fetch.download(url, tmp_path / "dest", files)
    assert not (tmp_path / "dest" / "b-idx3-ubyte.gz").exists()
    assert not [p for p in (tmp_path / "dest").iterdir() if p.name.startswith(".")]


def test_unreachable_server_names_manual_fix(tmp_path):
    with pytest.raises(LongtailError, match="copy the four idx files"):
        fetch.download("http://127.0.0.1:9/", tmp_path / "d", {"x.gz": "0" * 64}, timeout=2)


def test_ensure_prefers_existing_files(tmp_path):
    from conftest import write_mnist_folder

    root = write_mnist_folder(tmp_path / "fm")
    assert fetch.ensure_fashion_mnist(root, use_apt=False) == root
