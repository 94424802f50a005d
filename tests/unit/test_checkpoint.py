"""C2SP signed notes and tlog checkpoints: published vectors, round trips, rejections, key file."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditline.config import Settings
from auditline.integrity.checkpoint import (
    Checkpoint,
    CheckpointError,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from auditline.integrity.merkle import hash_leaf
from auditline.integrity.note import (
    Ed25519Signer,
    InvalidNoteSignature,
    MalformedNote,
    UnverifiedNote,
    Verifier,
    key_id,
    open_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)
from auditline.integrity.signer import (
    DEFAULT_KEY_FILE,
    KeyFileError,
    load_or_create_checkpoint_key,
    local_signer,
)

# -- published vectors: golang.org/x/mod/sumdb/note, note.go and note_test.go ---------------

PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKv"
    "qfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTG"
    "wnWLox33WWd1RvMc+QQ=\n"
)
PETER = parse_verifier_key(PETER_VKEY)
ENOCH = parse_verifier_key(ENOCH_VKEY)


def test_the_reference_signer_key_signs_exactly_the_published_note() -> None:
    signer = parse_signer_key(PETER_SKEY)
    assert sign_note(TEXT, signer) == TEXT + "\n" + PETER_SIG
    assert signer.verifier.vkey == PETER_VKEY


def test_key_ids_are_the_published_ones_and_the_specs_formula() -> None:
    assert PETER.key_id == 0xC74F20A3
    assert ENOCH.key_id == 0xAF0CFE78
    digest = hashlib.sha256(b"PeterNeumann\n\x01" + PETER.public_key).digest()
    assert key_id("PeterNeumann", PETER.public_key) == int.from_bytes(digest[:4], "big")
    assert Verifier("PeterNeumann", PETER.public_key).vkey == PETER_VKEY


def test_the_published_note_opens_with_the_published_keys() -> None:
    note = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    opened = open_note(note, [PETER])
    assert opened.text == TEXT
    assert [(s.name, s.key_id) for s in opened.signatures] == [("PeterNeumann", 0xC74F20A3)]
    assert [(s.name, s.key_id) for s in opened.unverified] == [("EnochRoot", 0xAF0CFE78)]
    both = open_note(note.encode(), [PETER, ENOCH])
    assert [s.name for s in both.signatures] == ["PeterNeumann", "EnochRoot"]
    assert both.unverified == ()
    assert "".join(s.line for s in both.signatures) == PETER_SIG + ENOCH_SIG


def test_a_note_text_may_contain_blank_lines_the_last_one_separates() -> None:
    signer = fresh_signer()
    text = "first paragraph\n\nsecond paragraph\n"
    assert open_note(sign_note(text, signer), [signer.verifier]).text == text


def test_a_repeated_signature_counts_once() -> None:
    opened = open_note(TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG, [PETER])
    assert len(opened.signatures) == 1
    assert len(opened.unverified) == 1


def test_every_mangling_of_a_verifier_key_is_refused() -> None:
    bad = {PETER_VKEY[i:j] for i in range(len(PETER_VKEY)) for j in range(i + 1, len(PETER_VKEY))}
    bad |= {
        PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1 :]
        for i in range(len(PETER_VKEY))
    }
    bad |= {
        # From note_test.go: a wrong key length and an unknown algorithm, key IDs adjusted.
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        PETER_VKEY.replace("c74f20a3", "0xc74f20"),  # int(..., 16) would take these
        PETER_VKEY.replace("c74f20a3", "c74_20a3"),
        PETER_VKEY.replace("c74f20a3", " c74f20a"),
        PETER_VKEY.replace("10TW", "10TX"),  # same bytes, non-canonical base64
    }
    bad.discard(PETER_VKEY)
    accepted = []
    for vkey in bad:
        try:
            parse_verifier_key(vkey)
        except ValueError:
            continue
        accepted.append(vkey)
    assert accepted == []


def test_every_mangling_of_a_signer_key_is_refused() -> None:
    skey = PETER_SKEY
    bad = {skey[i:j] for i in range(len(skey)) for j in range(i + 1, len(skey))}
    bad |= {skey[:i] + chr(ord(skey[i]) + 1) + skey[i + 1 :] for i in range(len(skey))}
    bad.discard(skey)
    accepted = []
    for candidate in bad:
        try:
            parse_signer_key(candidate)
        except ValueError:
            continue
        accepted.append(candidate)
    assert accepted == []


# -- rejections -------------------------------------------------------------------------------


def fresh_signer(name: str = "auditline.example/acme") -> Ed25519Signer:
    return Ed25519Signer(Ed25519PrivateKey.generate(), name)


def test_a_note_signed_by_another_key_is_refused_even_under_the_same_name() -> None:
    impostor = fresh_signer("PeterNeumann")
    note = sign_note(TEXT, impostor)
    with pytest.raises(UnverifiedNote, match="no signature by a known key") as caught:
        open_note(note, [PETER])
    assert caught.value.note.unverified[0].key_id == impostor.verifier.key_id


def test_a_note_whose_key_name_is_unknown_is_refused() -> None:
    renamed = PETER_SIG.replace("PeterNeumann", "PeterNeumann2")
    with pytest.raises(UnverifiedNote, match="PeterNeumann2"):
        open_note(TEXT + "\n" + renamed, [PETER])


@pytest.mark.parametrize("position", [0, 10, len(TEXT) - 2])
def test_a_changed_body_byte_breaks_the_signature(position: int) -> None:
    changed = TEXT[:position] + chr(ord(TEXT[position]) ^ 1) + TEXT[position + 1 :]
    with pytest.raises(InvalidNoteSignature, match="PeterNeumann\\+c74f20a3"):
        open_note(changed + "\n" + PETER_SIG, [PETER])


def test_a_forged_signature_under_a_known_name_and_id_rejects_the_whole_note() -> None:
    raw = base64.b64decode(PETER_SIG.split()[-1])
    forged = raw[:4] + bytes(64)
    line = f"\u2014 PeterNeumann {base64.b64encode(forged).decode()}\n"
    with pytest.raises(InvalidNoteSignature):
        open_note(TEXT + "\n" + ENOCH_SIG + line, [PETER, ENOCH])


@pytest.mark.parametrize(
    "note",
    [
        pytest.param(TEXT, id="no signatures"),
        pytest.param(TEXT + "\n", id="blank line, no signatures"),
        pytest.param(TEXT + "\n" + PETER_SIG[:-1], id="no trailing newline"),
        pytest.param("\x01" + TEXT + "\n" + PETER_SIG, id="control character"),
        pytest.param(TEXT.replace("\n", "\r\n") + "\n" + PETER_SIG, id="carriage returns"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("Peter", "Bad Peter"), id="space in name"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("Peter", "Peter+"), id="plus in name"),
        pytest.param(TEXT + "\n" + PETER_SIG + "Unexpected line.\n", id="trailing line"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("\u2014", "-"), id="hyphen, not em dash"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("AM=", "AN="), id="non-canonical base64"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("AM=", "AM"), id="missing padding"),
        pytest.param(TEXT + "\n\u2014 PeterNeumann x08g\n", id="signature too short"),
        pytest.param(TEXT + "\n" + PETER_SIG * 101, id="101 signatures"),
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(MalformedNote):
        open_note(note, [PETER])


def test_a_note_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(MalformedNote, match="UTF-8"):
        open_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode(), [PETER])


def test_two_different_verifier_keys_under_one_name_and_id_are_a_configuration_error() -> None:
    twin = Verifier.__new__(Verifier)
    for field, value in {"name": "PeterNeumann", "public_key": bytes(32)}.items():
        object.__setattr__(twin, field, value)
    object.__setattr__(twin, "key_id", PETER.key_id)
    with pytest.raises(ValueError, match="share name and ID"):
        open_note(TEXT + "\n" + PETER_SIG, [PETER, twin])


def test_signing_refuses_a_text_without_final_newline_and_a_lying_signer() -> None:
    signer = fresh_signer()
    with pytest.raises(MalformedNote, match="end in a newline"):
        sign_note(TEXT[:-1], signer)

    class LyingSigner:
        name = "auditline.example/acme"
        public_key = signer.public_key

        def sign(self, message: bytes) -> bytes:
            return fresh_signer().sign(message)

    with pytest.raises(ValueError, match="signature its key rejects"):
        sign_note(TEXT, LyingSigner())


# -- checkpoints --------------------------------------------------------------------------------

ROOT = hashlib.sha256(b"some root").digest()


def test_a_checkpoint_round_trips_through_signing_and_opening() -> None:
    signer = fresh_signer()
    checkpoint = Checkpoint("auditline.example/acme", 20852163, ROOT)
    note = sign_checkpoint(checkpoint, signer)
    root = base64.b64encode(ROOT).decode()
    assert note.startswith(f"auditline.example/acme\n20852163\n{root}\n\n\u2014 ")
    verifier = parse_verifier_key(signer.verifier.vkey)
    opened = open_checkpoint(note, [verifier], origin="auditline.example/acme")
    assert opened.checkpoint == checkpoint
    assert opened.note.signatures[0].key_id == verifier.key_id


def test_the_specs_example_checkpoint_body_parses() -> None:
    # c2sp.org/tlog-checkpoint's example (its key is not published, so the body only).
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    checkpoint = parse_checkpoint(text)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert base64.b64encode(checkpoint.root_hash).decode() == text.split("\n")[2]
    assert checkpoint.text() == text


def test_the_go_checksum_database_tree_format_is_the_same() -> None:
    # golang.org/x/mod/sumdb/tlog note_test.go: FormatTree of a size and RecordHash("hello
    # world"), which is RFC 6962's leaf hash, gives this golden text.
    golden = "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n"
    checkpoint = Checkpoint("go.sum database tree", 123456789012, hash_leaf(b"hello world"))
    assert checkpoint.text() == golden
    assert parse_checkpoint(golden + "extension\n").extensions == ("extension",)


@pytest.mark.parametrize(
    "size", ["-1", "+1", "0x10", "1e3", "01", " 1", "1 ", "", "1_000", "١٢", "9223372036854775808"]
)
def test_a_checkpoint_whose_size_is_not_a_plain_decimal_is_refused(size: str) -> None:
    root = base64.b64encode(ROOT).decode()
    with pytest.raises(CheckpointError, match="tree size"):
        parse_checkpoint(f"auditline.example/acme\n{size}\n{root}\n")


def test_a_signed_checkpoint_with_a_negative_size_is_refused_after_its_signature() -> None:
    signer = fresh_signer()
    note = sign_note(f"auditline.example/acme\n-1\n{base64.b64encode(ROOT).decode()}\n", signer)
    with pytest.raises(CheckpointError, match="tree size '-1'"):
        open_checkpoint(note, [signer.verifier])


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("auditline.example/acme\n1\n", "3 are needed"),
        (f"auditline.example/acme\n1\n{base64.b64encode(ROOT).decode()}", "end in a newline"),
        ("auditline.example/acme\n1\n" + base64.b64encode(ROOT[:31]).decode() + "\n", "31 bytes"),
        ("auditline.example/acme\n1\nnot base64!\n", "root hash: not base64"),
        ("\n1\n" + base64.b64encode(ROOT).decode() + "\n", "origin is empty"),
        ("o\n1\n" + base64.b64encode(ROOT).decode() + "\n\nx\n", "extension line is empty"),
    ],
)
def test_malformed_checkpoints_are_refused(text: str, reason: str) -> None:
    with pytest.raises(CheckpointError, match=reason):
        parse_checkpoint(text)


def test_a_checkpoint_of_another_origin_or_a_note_that_is_no_checkpoint_is_refused() -> None:
    signer = fresh_signer()
    note = sign_checkpoint(Checkpoint("auditline.example/other", 3, ROOT), signer)
    with pytest.raises(CheckpointError, match=r"not the expected 'auditline\.example/acme'"):
        open_checkpoint(note, [signer.verifier], origin="auditline.example/acme")
    with pytest.raises(CheckpointError, match="at least 3 are needed"):
        open_checkpoint(TEXT + "\n" + PETER_SIG, [PETER])


def test_a_checkpoint_cannot_be_made_with_impossible_fields() -> None:
    with pytest.raises(CheckpointError, match=r"not in 0\.\."):
        Checkpoint("auditline.example/acme", -1, ROOT)
    with pytest.raises(CheckpointError, match="control character"):
        Checkpoint("auditline.example/acme\n2", 1, ROOT)
    with pytest.raises(CheckpointError, match="33 bytes"):
        Checkpoint("auditline.example/acme", 1, ROOT + b"x")


# -- the local key file ---------------------------------------------------------------------


def test_the_key_file_is_created_owner_only_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / DEFAULT_KEY_FILE
    signer, created = local_signer(path, "auditline.example/acme")
    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = local_signer(path, "auditline.example/acme")
    assert not created_again
    assert again.public_key == signer.public_key
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    note = sign_checkpoint(Checkpoint("auditline.example/acme", 0, ROOT), signer)
    assert open_checkpoint(note, [parse_verifier_key(again.verifier.vkey)]).checkpoint.size == 0


def test_the_checkpoint_key_is_not_the_token_signing_key_file(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).signing_key_path != tmp_path / DEFAULT_KEY_FILE


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_KEY_FILE
    load_or_create_checkpoint_key(path)
    path.chmod(0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create_checkpoint_key(path)


def test_a_key_file_with_another_kind_of_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_KEY_FILE
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    with pytest.raises(KeyFileError, match="not hold an Ed25519"):
        load_or_create_checkpoint_key(path)
    path.write_bytes(b"not a key")
    with pytest.raises(KeyFileError, match="not hold a PEM private key"):
        load_or_create_checkpoint_key(path)
