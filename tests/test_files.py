"""Writing whole or not at all (speechrnn.files): what every saved file goes through."""
from __future__ import annotations

import os
import stat
import threading

import pytest

from speechrnn.files import replace_atomically


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("old")

    def half_then_fail(f):
        f.write("new, half of it")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        replace_atomically(path, half_then_fail)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["settings.json"]
    replace_atomically(path, lambda f: f.write(b"\x00new"), binary=True, sync=True)
    assert path.read_bytes() == b"\x00new" and os.listdir(tmp_path) == ["settings.json"]
    os.chmod(path, 0o600)  # a private file stays private, and a new one gets what open() would give it (not mkstemp's 0600)
    replace_atomically(path, lambda f: f.write("newer"))
    assert os.stat(path).st_mode & 0o777 == 0o600
    mask = os.umask(0o022)
    try:
        replace_atomically(tmp_path / "new.txt", lambda f: f.write("x"))
        assert os.stat(tmp_path / "new.txt").st_mode & 0o777 == 0o644
    finally:
        os.umask(mask)
    (tmp_path / "new.txt").unlink()
    os.mkfifo(tmp_path / "pipe")  # written into, not replaced by a file (as /dev/null would be)
    reader = threading.Thread(target=lambda: read.append((tmp_path / "pipe").read_bytes()))
    read: list[bytes] = []
    reader.start()
    replace_atomically(tmp_path / "pipe", lambda f: f.write(b"model"), binary=True, sync=True)
    reader.join(timeout=10)
    assert read == [b"model"] and stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)
    (tmp_path / "pipe").unlink()
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        replace_atomically(tmp_path / "loop1", lambda f: f.write("x"))
    for link in ("loop1", "loop2"):
        (tmp_path / link).unlink()
    long_name = tmp_path / "deeper" / ("n" * 250)  # a folder made, and a temporary name that fits
    replace_atomically(long_name, lambda f: f.write("x"))
    assert long_name.read_text() == "x" and os.listdir(long_name.parent) == [long_name.name]


def test_manifests_and_training_logs_are_written_through_it(tmp_path):
    from speechrnn.data import Utterance, read_manifest, write_manifest
    from speechrnn.train import write_log

    (tmp_path / "a.wav").write_bytes(b"")
    write_manifest(tmp_path / "m.jsonl", [Utterance(str(tmp_path / "a.wav"), "a b", 1.5)])
    assert [(u.text, u.duration) for u in read_manifest(tmp_path / "m.jsonl")] == [("a b", 1.5)]
    history = [{"epoch": 1, "train_loss": 2.0, "dev_wer": 90.0, "wall_s": 60.0}, {"epoch": 2, "train_loss": 1.0, "dev_wer": 50.0, "wall_s": 120.0}]
    write_log(tmp_path, history)
    assert (tmp_path / "log.csv").read_text().splitlines() == ["epoch,train_loss,dev_wer,wall_s", "1,2.0,90.0,60.0", "2,1.0,50.0,120.0"]
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path)) == ["a.wav", "curve.png", "log.csv", "m.jsonl"]
