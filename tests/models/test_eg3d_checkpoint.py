"""EG3D checkpoint reading: the official-format fixture decodes exactly, hostile pickles are refused."""

from __future__ import annotations

import builtins
import copy
import hashlib
import json
import os
import pickle
import pickletools
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from guide_ray.errors import UnsafeCheckpoint, WeightsInvalid, WeightsMissing
from guide_ray.models.eg3d import presets
from guide_ray.models.eg3d.checkpoint import EG3DSnapshot, convert_pickle, load_eg3d, read_eg3d_pickle, save_eg3d
from guide_ray.models.eg3d.triplane import TriPlaneGenerator
from guide_ray.models.eg3d.unpickler import ALLOWED_GLOBALS


@pytest.fixture(scope="module")
def tiny_pkl(shared_dir: Path) -> Path:
    return shared_dir / "fixtures" / "eg3d" / "tiny-official.pkl"


@pytest.fixture(scope="module")
def facts(shared_dir: Path) -> dict:
    return json.loads((shared_dir / "fixtures" / "eg3d" / "tiny-official.json").read_text())


@pytest.fixture(scope="module")
def snapshot(tiny_pkl: Path) -> EG3DSnapshot:
    return read_eg3d_pickle(tiny_pkl)


# --- hand-written pickles: each opcode spelled out, so a test controls exactly which global appears

def _global(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()  # GLOBAL (protocol 0 form)


def _stack_global(module: str, name: str) -> bytes:
    def text(s: str) -> bytes:
        return b"\x8c" + bytes([len(s)]) + s.encode()  # SHORT_BINUNICODE
    return text(module) + text(name) + b"\x93"  # STACK_GLOBAL (protocol 4 form)


def _text(s: str) -> bytes:
    return f"V{s}\n".encode("raw_unicode_escape")  # UNICODE


def _call(func: bytes, *args: bytes) -> bytes:
    return func + b"(" + b"".join(args) + b"tR"  # MARK args TUPLE REDUCE


def _dict(**items: bytes) -> bytes:
    return b"}(" + b"".join(_text(k) + v for k, v in items.items()) + b"u"  # EMPTY_DICT MARK ... SETITEMS


def _network_pickle(g_ema: bytes) -> bytes:
    return b"\x80\x04" + _dict(G_ema=g_ema) + b"."


def _persistent(state: bytes, version: int = 6) -> bytes:
    meta = _dict(type=_text("class"), version=f"I{version}\n".encode(), module_src=_text("raise SystemExit"),
                 class_name=_text("TriPlaneGenerator"), state=state)
    return _call(_global("torch_utils.persistence", "_reconstruct_persistent_obj"), meta)


def _empty_generator_state(**extra: bytes) -> bytes:
    empty = b"}"
    return _dict(_parameters=empty, _buffers=empty, _modules=empty, _init_args=b")", _init_kwargs=empty,
                 neural_rendering_resolution=b"I64\n", rendering_kwargs=empty, **extra)


def _write(tmp_path: Path, data: bytes, name: str = "net.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _keep_only_g_ema(data: bytes) -> bytes:
    """GUIDE's last.pkl layout from the fixture: the same stream, ending in {'G_ema': <its G_ema>}.

    The G_ema subtree refers back to memo entries made inside G, so it cannot be cut out;
    instead the finished top-level dict is popped and a new one built from G_ema's memo slot.
    """
    ops = list(pickletools.genops(data))
    out, memo, g_ema = bytearray(), 0, None
    for (op, arg, pos), nxt in zip(ops, [*ops[1:], (None, None, len(data))]):
        if op.name == "SHORT_BINUNICODE" and arg == "augment_pipe":
            g_ema = memo - 1  # G_ema's value ends by memoising the reconstructed object
        memo += op.name == "MEMOIZE"
        if op.name not in ("FRAME", "STOP"):  # frames are optional; drop them so bytes can be added
            out += data[pos:nxt[2]]
    assert g_ema is not None
    return bytes(out) + b"0}" + b"\x8c\x05G_ema" + b"j" + struct.pack("<I", g_ema) + b"s."


# --- the official-format fixture

def test_fixture_checksum_is_recorded(snapshot: EG3DSnapshot, tiny_pkl: Path, facts: dict) -> None:
    assert snapshot.file_sha256 == facts["pkl_sha256"]
    assert snapshot.file_sha256 == hashlib.sha256(tiny_pkl.read_bytes()).hexdigest()
    assert tiny_pkl.stat().st_size == facts["pkl_size_bytes"]


@pytest.mark.parametrize("which", ["G_ema", "G"])
def test_names_shapes_and_order_match_fixture(snapshot: EG3DSnapshot, facts: dict, which: str) -> None:
    sd = snapshot.state_dicts[which]
    assert list(sd) == facts["state_dict_keys"]
    for kind, total in (("parameters", "num_parameters"), ("buffers", "num_buffer_elements")):
        names = {name for name, _ in facts[kind]}
        got = [[k, list(t.shape)] for k, t in sd.items() if k in names]
        assert got == facts[kind]
        assert sum(sd[k].numel() for k in names) == facts[total]
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" and not t.requires_grad for t in sd.values())


def test_constructor_settings_are_recovered_as_plain_data(snapshot: EG3DSnapshot, facts: dict) -> None:
    assert snapshot.init_kwargs == facts["init_kwargs"]
    assert snapshot.init_args == facts["init_args"] == []
    assert snapshot.neural_rendering_resolution == facts["neural_rendering_resolution"] == 32
    assert snapshot.rendering_kwargs == facts["init_kwargs"]["rendering_kwargs"]

    def dict_types(value: object) -> set[type]:
        if isinstance(value, dict):
            return {type(value)}.union(*(dict_types(v) for v in value.values()))
        return set()
    assert dict_types(snapshot.init_kwargs) == {dict}  # no EasyDict stand-ins leak out


def test_module_classes_and_source_hashes(snapshot: EG3DSnapshot, facts: dict) -> None:
    classes = snapshot.class_names["G_ema"]
    assert classes[""] == "TriPlaneGenerator"
    assert classes["decoder"] == "training.triplane.OSGDecoder"
    assert classes["decoder.net.1"] == "torch.nn.modules.activation.Softplus"
    assert classes["superresolution"] == "SuperresolutionHybrid2X"
    src_hash = hashlib.sha256(facts["embedded_module_src_replacement"].encode()).hexdigest()
    assert set(snapshot.src_sha256["G_ema"].values()) == {src_hash}
    assert "decoder" not in snapshot.src_sha256["G_ema"]  # plain-pickled: no embedded source


def test_G_differs_from_G_ema(snapshot: EG3DSnapshot) -> None:
    g, g_ema = snapshot.state_dicts["G"], snapshot.state_dicts["G_ema"]
    differing = [k for k in g if not torch.equal(g[k], g_ema[k])]
    assert differing and "backbone.synthesis.b4.const" in differing


def test_reading_executes_nothing_from_the_file(tiny_pkl: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    read_eg3d_pickle(tiny_pkl)  # warm-up: torch imports some modules lazily on first load, via exec

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("code execution during checkpoint load")
    for name in ("exec", "compile", "eval"):
        monkeypatch.setattr(builtins, name, refuse)
    snap = read_eg3d_pickle(tiny_pkl)
    monkeypatch.undo()
    assert len(snap.state_dicts["G_ema"]) == 177
    assert not [m for m in sys.modules if m.startswith(("training", "torch_utils", "dnnlib", "_imported_module_"))]


def test_guide_last_pkl_layout_holds_only_G_ema(snapshot: EG3DSnapshot, tiny_pkl: Path, tmp_path: Path) -> None:
    snap = read_eg3d_pickle(_write(tmp_path, _keep_only_g_ema(tiny_pkl.read_bytes()), "last.pkl"))
    assert list(snap.state_dicts) == ["G_ema"]
    ours, ref = snap.state_dicts["G_ema"], snapshot.state_dicts["G_ema"]
    assert list(ours) == list(ref) and all(torch.equal(ours[k], ref[k]) for k in ref)


def test_missing_file_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissing) as err:
        read_eg3d_pickle(tmp_path / "ffhqrebalanced512-128.pkl")
    assert "ffhqrebalanced512-128.pkl" in str(err.value) and "catalog.ngc.nvidia.com" in str(err.value)


def test_truncated_file_is_invalid(tiny_pkl: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsInvalid, match="not a readable network pickle"):
        read_eg3d_pickle(_write(tmp_path, tiny_pkl.read_bytes()[: 1 << 20]))


# --- hostile and malformed pickles

EVIL_GLOBALS = [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
                ("builtins", "getattr"), ("builtins", "__import__"), ("builtins", "open"), ("subprocess", "Popen"),
                ("torch", "load"), ("pickle", "loads"), ("torch._utils", "_rebuild_tensor"),
                ("training.triplane", "TriPlaneGenerator"), ("torch.nn.modules.linear", "Linear")]


@pytest.mark.parametrize("encode", [_global, _stack_global], ids=["GLOBAL", "STACK_GLOBAL"])
@pytest.mark.parametrize(("module", "name"), EVIL_GLOBALS, ids=[f"{m}.{n}" for m, n in EVIL_GLOBALS])
def test_off_list_globals_are_refused_before_use(tmp_path: Path, encode, module: str, name: str) -> None:
    assert f"{module}.{name}" not in ALLOWED_GLOBALS
    marker = tmp_path / "pwned"
    path = _write(tmp_path, _network_pickle(_call(encode(module, name), _text(f"touch {marker}"))))
    with pytest.raises(UnsafeCheckpoint) as err:
        read_eg3d_pickle(path)
    assert (err.value.module, err.value.name) == (module, name)
    assert f"{module}.{name}" in str(err.value) and str(path) in str(err.value)
    assert not marker.exists()


class _Evil:
    def __init__(self, reduce: tuple) -> None:
        self.reduce = reduce

    def __reduce__(self) -> tuple:
        return self.reduce


@pytest.mark.parametrize("kind", ["os.system", "subprocess.Popen", "builtins.exec", "builtins.open"])
def test_real_pickle_dumps_of_side_effects_are_refused(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    reduce = {"os.system": (os.system, (f"touch {marker}",)),
              "subprocess.Popen": (subprocess.Popen, (["touch", str(marker)],)),
              "builtins.exec": (exec, (f"open({str(marker)!r}, 'w')",)),
              "builtins.open": (open, (str(marker), "w"))}[kind]
    path = _write(tmp_path, pickle.dumps({"G_ema": _Evil(reduce)}, protocol=4))
    with pytest.raises(UnsafeCheckpoint):
        read_eg3d_pickle(path)
    assert not marker.exists()


def test_handwritten_persistent_object_is_well_formed(tmp_path: Path) -> None:
    # The control for the next test: the same construct with a harmless state loads.
    snap = read_eg3d_pickle(_write(tmp_path, _network_pickle(_persistent(_empty_generator_state()))))
    assert snap.state_dicts == {"G_ema": {}} and snap.neural_rendering_resolution == 64


def test_evil_global_hidden_in_persistent_state_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = _call(_global("posix", "system"), _text(f"touch {marker}"))
    path = _write(tmp_path, _network_pickle(_persistent(_empty_generator_state(hidden=evil))))
    with pytest.raises(UnsafeCheckpoint, match="posix.system"):
        read_eg3d_pickle(path)
    assert not marker.exists()


def test_unknown_persistence_version_is_invalid(tmp_path: Path) -> None:
    path = _write(tmp_path, _network_pickle(_persistent(_empty_generator_state(), version=5)))
    with pytest.raises(WeightsInvalid, match="version=5"):
        read_eg3d_pickle(path)


def _legacy_torch_stream(obj: object) -> bytes:
    """The outer layers of a legacy torch.save (magic, protocol, sys_info) around `obj`."""
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return b"".join(pickle.dumps(x, protocol=2) for x in (0x1950A86A20F9469CFC6C, 1001, sys_info, obj))


@pytest.mark.parametrize("wrap", [lambda x: pickle.dumps(x, protocol=2), _legacy_torch_stream],
                         ids=["bare", "legacy-torch-framing"])
def test_malicious_storage_payload_is_refused(tmp_path: Path, wrap) -> None:
    marker = tmp_path / "pwned"
    payload = wrap(_Evil((os.system, (f"touch {marker}",))))
    blob = b"B" + struct.pack("<I", len(payload)) + payload  # BINBYTES
    path = _write(tmp_path, _network_pickle(_call(_global("torch.storage", "_load_from_bytes"), blob)))
    with pytest.raises(UnsafeCheckpoint) as err:
        read_eg3d_pickle(path)
    assert (err.value.module, err.value.name) == ("posix", "system")
    assert "weights_only=False" not in str(err.value)  # torch's retry advice must not reach users
    assert not marker.exists()


def test_garbage_storage_payload_is_invalid(tmp_path: Path) -> None:
    blob = b"B" + struct.pack("<I", 9) + b"not torch"
    path = _write(tmp_path, _network_pickle(_call(_global("torch.storage", "_load_from_bytes"), blob)))
    with pytest.raises(WeightsInvalid, match="cannot be read as torch data"):
        read_eg3d_pickle(path)


def test_persistent_ids_are_invalid(tmp_path: Path) -> None:
    with pytest.raises(WeightsInvalid, match="persistent ids"):
        read_eg3d_pickle(_write(tmp_path, _network_pickle(b"Pstorage0\n")))


@pytest.mark.parametrize("data", [pickle.dumps({"G": None}), pickle.dumps([1, 2]), pickle.dumps({"G_ema": {}})],
                         ids=["no-G_ema", "not-a-dict", "G_ema-not-a-module"])
def test_not_an_eg3d_pickle_is_invalid(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(WeightsInvalid):
        read_eg3d_pickle(_write(tmp_path, data))


# --- building the generator: load_eg3d, save_eg3d, convert_pickle

@pytest.fixture(scope="module")
def G_ema(tiny_pkl: Path) -> TriPlaneGenerator:
    return load_eg3d(tiny_pkl)


def _assert_same_tensors(found: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert list(found) == list(expected)
    unequal = [k for k in expected if not torch.equal(found[k], expected[k])]
    assert not unequal, f"{len(unequal)} tensors differ, e.g. {unequal[:3]}"


def test_load_eg3d_rebuilds_the_official_generator(G_ema: TriPlaneGenerator, snapshot: EG3DSnapshot) -> None:
    assert isinstance(G_ema, TriPlaneGenerator)
    _assert_same_tensors(G_ema.state_dict(), snapshot.state_dicts["G_ema"])
    assert G_ema.neural_rendering_resolution == 32  # the pickled attribute, not the constructor's 64
    assert G_ema.rendering_kwargs == snapshot.rendering_kwargs
    assert not G_ema.training and not any(p.requires_grad for p in G_ema.parameters())


def test_load_eg3d_which_G(tiny_pkl: Path, snapshot: EG3DSnapshot, tmp_path: Path) -> None:
    _assert_same_tensors(load_eg3d(tiny_pkl, which="G").state_dict(), snapshot.state_dicts["G"])
    guide_last = _write(tmp_path, _keep_only_g_ema(tiny_pkl.read_bytes()), "last.pkl")
    _assert_same_tensors(load_eg3d(guide_last).state_dict(), snapshot.state_dicts["G_ema"])
    with pytest.raises(WeightsInvalid, match="holds no G"):
        load_eg3d(guide_last, which="G")


def test_load_eg3d_executes_nothing(tiny_pkl: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_eg3d(tiny_pkl)  # warm-up for torch's lazy imports

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("code execution during checkpoint load")
    for name in ("exec", "compile", "eval"):
        monkeypatch.setattr(builtins, name, refuse)
    G = load_eg3d(tiny_pkl)
    monkeypatch.undo()
    assert G.neural_rendering_resolution == 32


def test_save_load_round_trip_is_exact(G_ema: TriPlaneGenerator, tmp_path: Path) -> None:
    G = copy.deepcopy(G_ema)
    with torch.no_grad():
        G.backbone.synthesis.b4.const.add_(1.0)  # an edited generator, as after unlearning
    G.neural_rendering_resolution = 48
    path = save_eg3d(G, tmp_path / "G_u.pkl")  # a misleading extension: the content decides
    assert [p.name for p in tmp_path.iterdir()] == ["G_u.pkl"]  # no temp file left behind
    record = torch.load(path, weights_only=True)
    assert record["format"] == "guide_ray.eg3d" and record["version"] == 1
    assert record["init_kwargs"] == G_ema.init_kwargs
    G2 = load_eg3d(path)
    _assert_same_tensors(G2.state_dict(), G.state_dict())
    assert G2.neural_rendering_resolution == 48 and G2.rendering_kwargs == G.rendering_kwargs


def test_save_a_preset_generator_round_trips(tmp_path: Path) -> None:
    G = presets.build_generator("tiny")
    assert G.init_kwargs == presets.TINY                 # recorded at construction
    G2 = load_eg3d(save_eg3d(G, tmp_path / "tiny.pt"))
    assert G2.init_kwargs == presets.TINY and G2.backbone.num_ws == 10
    _assert_same_tensors(G2.state_dict(), G.state_dict())
    assert G2.neural_rendering_resolution == 32


def test_convert_pickle_then_load(tiny_pkl: Path, snapshot: EG3DSnapshot, tmp_path: Path) -> None:
    out = convert_pickle(tiny_pkl, tmp_path / "weights" / "tiny.pt")
    assert out == tmp_path / "weights" / "tiny.pt"
    G = load_eg3d(out)
    _assert_same_tensors(G.state_dict(), snapshot.state_dicts["G_ema"])
    assert G.neural_rendering_resolution == 32 and G.init_kwargs == snapshot.init_kwargs
    with pytest.raises(WeightsInvalid, match="holds one generator"):
        load_eg3d(out, which="G")


def test_official_pickle_is_recognised_under_any_name(tiny_pkl: Path, tmp_path: Path) -> None:
    G = load_eg3d(_write(tmp_path, tiny_pkl.read_bytes(), "G_ema.pt"))
    assert G.neural_rendering_resolution == 32


def _own_record(G: TriPlaneGenerator, **changes: object) -> dict:
    record = {"format": "guide_ray.eg3d", "version": 1, "init_args": [], "init_kwargs": G.init_kwargs,
              "neural_rendering_resolution": 32, "rendering_kwargs": G.rendering_kwargs,
              "state_dict": dict(G.state_dict())}
    return {**record, **changes}


def test_tensors_that_do_not_fit_are_named(G_ema: TriPlaneGenerator, tmp_path: Path) -> None:
    sd = dict(G_ema.state_dict())
    del sd["decoder.net.0.weight"]
    sd["decoder.net.9.weight"] = torch.zeros(1)
    sd["backbone.mapping.w_avg"] = torch.zeros(7)
    torch.save(_own_record(G_ema, state_dict=sd), tmp_path / "bad.pt")
    with pytest.raises(WeightsInvalid) as err:
        load_eg3d(tmp_path / "bad.pt")
    message = str(err.value)
    assert "1 missing (decoder.net.0.weight)" in message
    assert "1 unexpected (decoder.net.9.weight)" in message
    assert "backbone.mapping.w_avg [7] vs [512]" in message


@pytest.mark.parametrize(("changes", "match"), [
    ({"version": 2}, "version 2"),
    ({"format": "something.else"}, "not a guide_ray.eg3d generator"),
    ({"init_kwargs": {"z_dim": 64}}, "rejects the stored init_kwargs"),
    ({"neural_rendering_resolution": "32"}, "not a positive int"),
], ids=["version", "format", "init_kwargs", "resolution"])
def test_own_format_is_checked(G_ema: TriPlaneGenerator, tmp_path: Path, changes: dict, match: str) -> None:
    torch.save(_own_record(G_ema, **changes), tmp_path / "bad.pt")
    with pytest.raises(WeightsInvalid, match=match):
        load_eg3d(tmp_path / "bad.pt")


def test_own_format_with_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save({"format": "guide_ray.eg3d", "x": _Evil((os.system, (f"touch {marker}",)))}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeCheckpoint, match="posix.system"):
        load_eg3d(tmp_path / "evil.pt")
    assert not marker.exists()


def test_unknown_container_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(WeightsInvalid, match="neither a torch.save file nor a pickle"):
        load_eg3d(_write(tmp_path, b"GIF89a...", "G.pkl"))
