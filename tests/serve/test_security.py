"""API keys from env/file (never code), constant-time check, media-root containment, CLI refusal without keys."""
from __future__ import annotations

import argparse
import os

import pytest

from fusionrec.errors import UserError
from fusionrec.serve.security import (
    KeyChecker,
    PathEscapeError,
    load_api_keys,
    resolve_media_path,
)

KEY = "k" * 20


def test_keys_from_env_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEYS", f"{KEY}, {'z' * 24} ,")
    f = tmp_path / "keys.txt"
    f.write_text("# ops team\n" + "y" * 32 + "\n\n")
    assert load_api_keys("MY_KEYS", f) == {KEY: "write", "z" * 24: "write", "y" * 32: "write"}
    monkeypatch.setenv("MY_KEYS", "short")
    with pytest.raises(UserError, match="shorter than 16"):
        load_api_keys("MY_KEYS", None)
    with pytest.raises(UserError, match="does not exist"):
        load_api_keys(None, tmp_path / "missing.txt")


def test_key_checker():
    checker = KeyChecker([KEY, "q" * 30])
    assert checker.check(KEY) and checker.check("q" * 30)
    assert not checker.check(None) and not checker.check("") and not checker.check(KEY + "x")
    assert not KeyChecker([]).check(KEY)  # no keys configured: nothing is accepted
    roles = KeyChecker({KEY: "read", "q" * 30: "admin"})
    assert roles.role_of(KEY) == "read" and roles.check(KEY, "read") and not roles.check(KEY, "write")
    assert roles.check("q" * 30, "admin") and roles.role_of("nope" * 5) is None


def test_media_root_containment(tmp_path):
    root = tmp_path / "media"
    (root / "a").mkdir(parents=True)
    (root / "a" / "ok.jpg").write_bytes(b"x")
    (tmp_path / "outside.jpg").write_bytes(b"x")
    assert resolve_media_path(root, "a/ok.jpg") == (root / "a" / "ok.jpg").resolve()
    assert resolve_media_path(root, str(root / "a" / "ok.jpg")).name == "ok.jpg"
    os.symlink(tmp_path / "outside.jpg", root / "a" / "sneaky.jpg")
    os.symlink(tmp_path, root / "dirlink")
    for bad in ("../outside.jpg", "a/../../outside.jpg", str(tmp_path / "outside.jpg"), "a/sneaky.jpg",
                "dirlink/outside.jpg", "a/ok.jpg\x00.png"):
        with pytest.raises(PathEscapeError):
            resolve_media_path(root, bad)
    with pytest.raises(FileNotFoundError):
        resolve_media_path(root, "a/none.jpg")
    with pytest.raises(PathEscapeError, match="no media root"):
        resolve_media_path(None, "a/ok.jpg")


def test_serve_refuses_to_start_without_keys(monkeypatch, model_dir):
    from fusionrec.serve.cli import add_parser

    monkeypatch.delenv("FUSIONREC_API_KEYS", raising=False)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["serve", "--model", str(model_dir), "--no-encoders"])
    with pytest.raises(UserError, match="no API key"):
        args.func(args)
    args = parser.parse_args(["serve", "--model", str(model_dir.parent / "nothing"), "--allow-no-keys"])
    with pytest.raises(UserError, match="not a saved fusionrec model"):
        args.func(args)
