"""The artifact store: content addressing, atomic writes, hash checks on read, typed save and load."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from cardloop.errors import ArtifactCorrupt, ArtifactUndecodable, StoreError
from cardloop.store.artifacts import ArtifactRef, ArtifactStore, default_store_root
from cardloop.store.codecs import CodecContext, codec_for_kind
from tests.undecodable import offsets_past_the_end, renamed, reshaped, retyped, with_metadata


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(tmp_path / "store")


def stored_files(store):
    return sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file())


def test_bytes_are_stored_under_their_sha256(store):
    digest = store.put(b"hello", "bin")
    assert digest == hashlib.sha256(b"hello").hexdigest()
    assert stored_files(store) == [f"artifacts/{digest[:2]}/{digest}.bin"]
    assert store.get(digest) == b"hello" and store.has(digest) and store.verify(digest)


def test_storing_the_same_bytes_again_does_not_rewrite_the_file(store):
    digest = store.put(b"same", "bin")
    path = store.root / "artifacts" / digest[:2] / f"{digest}.bin"
    before = path.stat().st_mtime_ns
    os.utime(path, ns=(before - 10**9, before - 10**9))
    assert store.put(b"same", "bin") == digest
    assert path.stat().st_mtime_ns == before - 10**9


def test_a_write_that_fails_before_the_rename_leaves_no_file_and_no_temp(store, monkeypatch):
    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.put(b"x" * 1000, "bin")
    digest = hashlib.sha256(b"x" * 1000).hexdigest()
    assert stored_files(store) == []
    assert not store.has(digest)


def test_a_write_that_fails_half_way_leaves_no_file_at_the_final_path(store, monkeypatch):
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, file):
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            self.file.write(data[: len(data) // 2])
            raise OSError("killed mid-write")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="mid-write"):
        store.put(b"y" * 1000, "bin")
    assert stored_files(store) == []


def test_a_temp_file_left_by_a_killed_writer_is_not_served(store, monkeypatch):
    def killed(*args):
        raise OSError("killed before the rename")

    monkeypatch.setattr(os, "replace", killed)
    monkeypatch.setattr(os, "unlink", lambda path: None)
    with pytest.raises(OSError):
        store.put(b"z" * 100, "bin")
    digest = hashlib.sha256(b"z" * 100).hexdigest()
    assert len(stored_files(store)) == 1
    assert not store.has(digest)
    with pytest.raises(StoreError, match="is missing"):
        store.get(digest)


def test_a_flipped_byte_on_disk_is_detected_on_read(store):
    digest = store.put(b"important weights", "bin")
    path = store.root / "artifacts" / digest[:2] / f"{digest}.bin"
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=f"artifact {digest} is corrupt: its content does not match its hash"):
        store.get(digest)
    assert store.has(digest) and not store.verify(digest)


def test_putting_the_content_again_repairs_a_corrupt_artifact(store):
    digest = store.put(b"content", "bin")
    path = store.root / "artifacts" / digest[:2] / f"{digest}.bin"
    path.write_bytes(b"garbage")
    assert store.put(b"content", "bin") == digest
    assert store.get(digest) == b"content"


def test_a_missing_artifact_is_an_error_that_says_so(store):
    digest = "ab" * 32
    with pytest.raises(StoreError, match=f"artifact {digest} is missing"):
        store.get(digest)
    assert not store.has(digest) and not store.verify(digest)


def test_a_malformed_digest_is_refused_before_touching_the_disk(store):
    with pytest.raises(StoreError, match="not an artifact digest"):
        store.get("../../etc/passwd")


def test_save_and_load_a_value_by_kind(store):
    table = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    ref = store.save("dataframe", table)
    assert ref.kind == "dataframe" and ref.codec == "dataframe-parquet" and ref.summary["rows"] == 3
    assert ref.size == len(store.get(ref.digest))
    assert stored_files(store)[0].endswith(".parquet")
    pd.testing.assert_frame_equal(store.load(ref), table)
    pd.testing.assert_frame_equal(store.load((ref.digest, "dataframe")), table)


def test_equal_values_are_stored_once(store):
    first = store.save("tensor", torch.arange(10.0))
    second = store.save("tensor", torch.arange(10.0))
    assert first == second and len(stored_files(store)) == 1


def test_a_value_on_an_any_port_is_saved_with_its_types_codec_and_loaded_by_its_ref(store):
    ref = store.save("any", {"accuracy": 0.9})
    assert ref.kind == "info" and ref.codec == "info-json"
    assert store.load(ref) == {"accuracy": 0.9}
    with pytest.raises(StoreError, match="ArtifactRef"):
        store.load((ref.digest, "any"))


def test_a_model_and_its_optimizer_load_in_order_onto_the_device(store, make_mlp, train_steps):
    model = make_mlp()
    optimizer = torch.optim.Adam(model.parameters())
    train_steps(model, optimizer, 2)
    model_ref = store.save("model", model)
    optimizer_ref = store.save("optimizer", optimizer, CodecContext(model=model))
    loaded_model = store.load(model_ref, CodecContext(device="cpu"))
    loaded_optimizer = store.load(optimizer_ref, CodecContext(model=loaded_model))
    assert loaded_optimizer.param_groups[0]["params"][0] is loaded_model[0].weight
    assert ArtifactRef(optimizer_ref.digest, "optimizer", optimizer_ref.codec, optimizer_ref.size) == optimizer_ref


# --- artifacts that pass their hash check but do not decode ------------------------------------------------


def stored_model_bytes(make_mlp) -> bytes:
    model = make_mlp()
    model(torch.randn(2, 4)).sum().backward()
    return codec_for_kind("model").encode(model, CodecContext())


def undecodable(store, kind: str, data: bytes):
    """Load bytes put through the store (so their hash is right) as a value of `kind`; the error it raises."""
    digest = store.put(data, "safetensors")
    assert store.verify(digest)
    with pytest.raises(ArtifactUndecodable) as raised:
        store.load((digest, kind))
    assert str(raised.value).startswith(f"artifact {digest} ({codec_for_kind(kind).name}) passes its hash check "
                                        "but does not decode: ")
    return raised.value


def test_a_hash_failure_is_an_artifact_corrupt_error(store):
    digest = store.put(b"hello", "bin")
    next(store.artifacts_dir.rglob(f"{digest}.bin")).write_bytes(b"HELLO")
    with pytest.raises(ArtifactCorrupt):
        store.get(digest)


def test_an_undecodable_artifact_is_a_kind_of_corrupt_artifact():
    assert issubclass(ArtifactUndecodable, ArtifactCorrupt)


def test_tensor_offsets_past_the_end_of_the_file_do_not_decode(store, make_mlp):
    error = undecodable(store, "model", offsets_past_the_end(stored_model_bytes(make_mlp)))
    assert "offset" in str(error)


def test_a_weight_whose_dtype_is_not_a_float_does_not_decode(store, make_mlp):
    undecodable(store, "model", retyped(stored_model_bytes(make_mlp), "state.0.weight", "I32"))


def test_a_weight_of_another_shape_does_not_decode(store, make_mlp):
    error = undecodable(store, "model", reshaped(stored_model_bytes(make_mlp), "state.0.weight", [4, 8]))
    assert "'0.weight' has shape [4, 8] stored but [8, 4]" in str(error)


def test_a_gradient_of_another_shape_does_not_decode(store, make_mlp):
    undecodable(store, "model", reshaped(stored_model_bytes(make_mlp), "grad.0.weight", [4, 8]))


def test_a_gradient_for_a_parameter_the_model_lacks_does_not_decode(store, make_mlp):
    error = undecodable(store, "model", renamed(stored_model_bytes(make_mlp), "grad.0.weight", "grad.9.weight"))
    assert "names a gradient '9.weight', which the rebuilt model does not have" in str(error)


def test_a_weight_the_model_lacks_does_not_decode(store, make_mlp):
    error = undecodable(store, "model", renamed(stored_model_bytes(make_mlp), "state.0.weight", "state.9.weight"))
    assert "missing ['0.weight'], unexpected ['9.weight']" in str(error)


def test_metadata_missing_an_entry_does_not_decode(store, make_mlp):
    error = undecodable(store, "model", with_metadata(stored_model_bytes(make_mlp), lambda m: m.pop("eval_modules")))
    assert "KeyError: 'eval_modules'" in str(error)


def test_an_optimizer_whose_state_names_a_missing_tensor_does_not_decode(store, make_mlp, train_steps):
    model = make_mlp()
    optimizer = torch.optim.Adam(model.parameters())
    train_steps(model, optimizer, 1)
    data = codec_for_kind("optimizer").encode(optimizer, CodecContext(model=model))
    digest = store.put(renamed(data, "state/0.weight/exp_avg", "elsewhere"), "safetensors")
    with pytest.raises(ArtifactUndecodable, match="optimizer-safetensors"):
        store.load((digest, "optimizer"), CodecContext(model=model))


def test_a_tensor_claiming_a_shape_its_bytes_do_not_hold_does_not_decode(store):
    data = codec_for_kind("tensor").encode(torch.arange(6.0), CodecContext())
    undecodable(store, "tensor", reshaped(data, "tensor", [7]))


def test_bytes_that_are_no_parquet_do_not_decode_as_a_table(store):
    digest = store.put(b"PAR1 but not really", "parquet")
    with pytest.raises(ArtifactUndecodable, match=f"artifact {digest} \\(dataframe-parquet\\)"):
        store.load((digest, "dataframe"))


def test_bytes_that_are_no_json_do_not_decode_as_an_info(store):
    digest = store.put(b"{not json", "json")
    with pytest.raises(ArtifactUndecodable, match="info-json"):
        store.load((digest, "info"))


def test_the_default_root_is_the_env_variable_or_dot_cardloop(monkeypatch, tmp_path):
    monkeypatch.delenv("CARDLOOP_STORE", raising=False)
    assert default_store_root() == Path(".cardloop")
    assert ArtifactStore().root == Path(".cardloop")
    monkeypatch.setenv("CARDLOOP_STORE", str(tmp_path))
    assert ArtifactStore().root == tmp_path
