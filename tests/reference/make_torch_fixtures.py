#!/usr/bin/python3
"""Writes tests/fixtures/torchzip/: small checkpoints saved by torch.save (zip and legacy formats),
a Flax-style msgpack file, hostile/corrupt variants, and expected.json with every tensor's values as
torch/numpy compute them (the C reader is checked against these, not against itself).

Regenerate (Debian python3 with torch 1.13, numpy, python3-msgpack):
    /usr/bin/python3 tests/reference/make_torch_fixtures.py
"""
import collections
import io
import json
import os
import pickle
import sys
import types
import zipfile

import msgpack
import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "torchzip")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(1234)
np.random.seed(1234)

DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
               torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}
expected = {"files": {}, "errors": {}}


def describe(tensors, ties=()):
    out = {}
    for name, t in tensors.items():
        t = t.detach()
        floats = t.dtype.is_floating_point
        values = t.float().flatten().tolist() if floats else t.flatten().long().tolist()
        out[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "values": values}
    return {"tensors": out, "ties": [list(pair) for pair in ties]}


def save(name, obj, legacy=False):
    path = os.path.join(OUT, name)
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


# --- a state dict exercising dtypes, views, offsets and tied storages ------------------------------------
big = torch.randn(6, 4)
base = torch.randn(4, 5)
embedding = torch.nn.Parameter(torch.randn(7, 3))
state = collections.OrderedDict()
state["linear.weight"] = torch.randn(3, 4)
state["linear.bias"] = torch.randn(3)
state["half"] = torch.randn(2, 3).half()
state["bf16"] = torch.randn(5).bfloat16()
state["double"] = torch.randn(2, 2).double()
state["embeddings.position_ids"] = torch.arange(6).unsqueeze(0)
state["bn.num_batches_tracked"] = torch.tensor(7)
state["logit_scale"] = torch.tensor(4.6052)
state["transposed"] = base.t()                 # non-contiguous view
state["slice"] = big[2:5]                      # contiguous, storage offset 8
state["strided"] = big[1:, 1::2]               # non-contiguous, storage offset 5
state["word_embeddings.weight"] = embedding    # nn.Parameter -> _rebuild_parameter
state["decoder.weight"] = embedding.detach()   # tied as Module.state_dict() gives it: one storage
state["alias"] = embedding                     # the same object again (a memo reference)
state["empty"] = torch.zeros(0, 3)
ties = [("word_embeddings.weight", "decoder.weight"), ("word_embeddings.weight", "alias")]
save("basic.pt", state)
expected["files"]["basic.pt"] = describe(state, ties)
save("legacy.bin", state, legacy=True)
expected["files"]["legacy.bin"] = describe(state, ties)


# --- a Lightning-style checkpoint with pickled config objects beside the state dict ------------------
def fake_module(name):
    module = types.ModuleType(name)
    sys.modules[name] = module
    return module


omegaconf = fake_module("omegaconf")
dictconfig = fake_module("omegaconf.dictconfig")
nodes = fake_module("omegaconf.nodes")


class DictConfig:  # pickled by the default protocol-2 path: NEWOBJ + BUILD of its __dict__
    def __init__(self, content):
        self._content = content
        self._metadata = nodes.Metadata("model", 3)


class Metadata:  # pickled through REDUCE of an unknown function
    def __init__(self, key, depth):
        self.key, self.depth = key, depth

    def __reduce__(self):
        return (nodes.make_metadata, (self.key, self.depth))


def make_metadata(key, depth):
    return Metadata(key, depth)


for cls, module in ((DictConfig, dictconfig), (Metadata, nodes)):
    cls.__module__ = module.__name__
    setattr(module, cls.__name__, cls)
make_metadata.__module__ = "omegaconf.nodes"
nodes.make_metadata = make_metadata

gloria = collections.OrderedDict()
gloria["gloria.img_encoder.global_embedder.weight"] = torch.randn(4, 6)
gloria["gloria.img_encoder.global_embedder.bias"] = torch.randn(4)
gloria["gloria.text_encoder.model.embeddings.position_ids"] = torch.arange(5).unsqueeze(0)
lightning = {
    "epoch": 12,
    "global_step": 3400,
    "pytorch-lightning_version": "1.1.4",
    "state_dict": gloria,
    "hyper_parameters": DictConfig({"model": {"text": {"bert_type": "emilyalsentzer/Bio_ClinicalBERT",
                                                       "embedding_dim": 768}}, "lr": 5e-5,
                                    "tags": {"a", "b"}, "crop": (224, 224)}),
    "optimizer_states": [{"state": {0: {"exp_avg": torch.randn(4, 6), "step": 3}},
                          "param_groups": [{"lr": 5e-5, "params": [0, 1]}]}],
    "lr_schedulers": [],
    "callbacks": {},
}
save("lightning.ckpt", lightning)
expected["files"]["lightning.ckpt"] = describe(gloria)

# --- a {"model": ...} wrapper (plain dict) and a root that nests dicts itself ---------------------------
model = {"visual.proj": torch.randn(3, 2), "text.ln.weight": torch.ones(3)}
save("wrapped_model.pth", {"model": model, "epoch": 1, "args": {"lr": 0.1}})
expected["files"]["wrapped_model.pth"] = describe(model)
nested = {"encoder": {"layer": {"0": {"w": torch.randn(2, 2)}}}, "head.bias": torch.randn(2),
          "optimizer": {"state": {0: {"momentum_buffer": torch.randn(2)}}}, "note": "hello"}
save("nested_root.pt", nested)
expected["files"]["nested_root.pt"] = describe({"encoder.layer.0.w": nested["encoder"]["layer"]["0"]["w"],
                                                "head.bias": nested["head.bias"]})


# --- hostile checkpoints: calling them would run code; they must be refused, never executed -----------
class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/medvlp_pwned_by_fixture",))


class EvilEval:
    def __reduce__(self):
        return (eval, ("__import__('os').system('touch /tmp/medvlp_pwned_by_fixture')",))


save("malicious_root.pt", Evil())
expected["errors"]["malicious_root.pt"] = ["posix.system", "refusing"]
save("malicious_value.pt", {"w": torch.ones(2), "evil": EvilEval()})
expected["errors"]["malicious_value.pt"] = ["builtins.eval", "evil"]
save("malicious_state_dict.ckpt", {"state_dict": Evil(), "epoch": 1})
expected["errors"]["malicious_state_dict.ckpt"] = ["posix.system"]


# --- corrupt archives -------------------------------------------------------------------------------------
def archive_entries(path):
    with zipfile.ZipFile(path) as z:
        return [(info.filename, z.read(info.filename)) for info in z.infolist()]


def write_zip(name, entries, deflate=()):
    with zipfile.ZipFile(os.path.join(OUT, name), "w") as z:
        for entry, data in entries:
            method = zipfile.ZIP_DEFLATED if entry in deflate else zipfile.ZIP_STORED
            z.writestr(zipfile.ZipInfo(entry), data, compress_type=method)


basic_bytes = open(os.path.join(OUT, "basic.pt"), "rb").read()
with open(os.path.join(OUT, "truncated.pt"), "wb") as f:
    f.write(basic_bytes[: len(basic_bytes) // 2])
expected["errors"]["truncated.pt"] = ["truncated.pt", "zip"]

entries = archive_entries(os.path.join(OUT, "basic.pt"))
pkl_name = [e for e, _ in entries if e.endswith("/data.pkl")][0]
prefix = pkl_name[: -len("/data.pkl")]
write_zip("deflated.pt", entries, deflate={pkl_name})
expected["errors"]["deflated.pt"] = ["deflated.pt", pkl_name, "compressed"]
write_zip("big_endian.pt", entries + [(prefix + "/byteorder", b"big")])
expected["errors"]["big_endian.pt"] = ["big_endian.pt", "little-endian"]
write_zip("no_pickle.pt", [(e, d) for e, d in entries if e != pkl_name])
expected["errors"]["no_pickle.pt"] = ["no_pickle.pt", "data.pkl"]
write_zip("missing_storage.pt", [(e, d) for e, d in entries if "/data/" not in e or not e.endswith("/0")])
expected["errors"]["missing_storage.pt"] = ["missing_storage.pt", "storage", "missing"]
write_zip("bad_opcode.pt", [(prefix + "/data.pkl", b"\x80\x02}q\x00\xff.")])
expected["errors"]["bad_opcode.pt"] = ["bad_opcode.pt", "opcode 0xff"]
write_zip("protocol0.pt", [(prefix + "/data.pkl", pickle.dumps({"a": 1}, protocol=0))])
expected["errors"]["protocol0.pt"] = ["protocol0.pt", "opcode"]
write_zip("stack_underflow.pt", [(prefix + "/data.pkl", b"\x80\x02s.")])
expected["errors"]["stack_underflow.pt"] = ["stack_underflow.pt", "underflow"]
cycle = {"w": {}}
cycle["w"]["again"] = cycle
write_zip("cycle.pt", [(prefix + "/data.pkl", pickle.dumps(cycle, protocol=2))])
expected["errors"]["cycle.pt"] = ["cycle.pt", "nested deeper"]


class StorageRef:
    def __init__(self, numel):
        self.numel = numel


class HandTensor:  # a tensor whose view the pickle describes by hand
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, StorageRef):
            return ("storage", torch.FloatStorage, "0", "cpu", obj.numel)
        return None


def hand_archive(name, tensor, storage_bytes):
    buffer = io.BytesIO()
    TorchPickler(buffer, protocol=2).dump(collections.OrderedDict(w=tensor))
    write_zip(name, [("hand/data.pkl", buffer.getvalue()), ("hand/data/0", storage_bytes), ("hand/version", b"3\n")])


four = np.arange(4, dtype="<f4").tobytes()
hand_archive("view_past_end.pt", HandTensor(StorageRef(4), 1, (2, 2), (2, 1)), four)
expected["errors"]["view_past_end.pt"] = ["view_past_end.pt", "w", "past the end"]
hand_archive("short_storage.pt", HandTensor(StorageRef(8), 0, (4,), (1,)), four)
expected["errors"]["short_storage.pt"] = ["short_storage.pt", "fewer"]
hand_archive("hand_ok.pt", HandTensor(StorageRef(4), 1, (3,), (1,)), four)
expected["files"]["hand_ok.pt"] = {"tensors": {"w": {"dtype": "F32", "shape": [3], "values": [1.0, 2.0, 3.0]}},
                                   "ties": []}

# --- Flax msgpack --------------------------------------------------------------------------------------


def ext_array(array, code=1):
    payload = msgpack.packb((list(array.shape), array.dtype.name, array.tobytes("C")), use_bin_type=True)
    return msgpack.ExtType(code, payload)


kernel = np.random.randn(3, 4).astype(np.float32)
embedding_table = np.random.randn(5, 2).astype(np.float16)
chunked = np.random.randn(2, 3).astype(np.float32)
flax_tree = {
    "text_model": {
        "embeddings": {"word_embeddings": {"embedding": ext_array(embedding_table)}},
        "encoder": {"layer": {"0": {"output": {"dense": {"kernel": ext_array(kernel),
                                                         "bias": ext_array(np.zeros(4, np.float32))}}}}},
        "pooler": {"dense": {"kernel": {"__msgpack_chunked_array__": True, "shape": {"0": 2, "1": 3},
                                        "chunks": {"0": ext_array(chunked.reshape(-1)[:4]),
                                                   "1": ext_array(chunked.reshape(-1)[4:])}}}},
    },
    "logit_scale": ext_array(np.asarray(np.float32(2.5)), code=3),
    "position_ids": ext_array(np.arange(4, dtype=np.int64)[None]),
}
with open(os.path.join(OUT, "flax_model.msgpack"), "wb") as f:
    f.write(msgpack.packb(flax_tree, use_bin_type=True))
expected["files"]["flax_model.msgpack"] = describe({
    "text_model/embeddings/word_embeddings/embedding": torch.from_numpy(embedding_table),
    "text_model/encoder/layer/0/output/dense/kernel": torch.from_numpy(kernel),
    "text_model/encoder/layer/0/output/dense/bias": torch.zeros(4),
    "text_model/pooler/dense/kernel": torch.from_numpy(chunked),
    "logit_scale": torch.tensor(2.5),
    "position_ids": torch.arange(4)[None],
})
with open(os.path.join(OUT, "flax_bad_dtype.msgpack"), "wb") as f:
    f.write(msgpack.packb({"x": ext_array(np.zeros(2, np.complex64))}, use_bin_type=True))
expected["errors"]["flax_bad_dtype.msgpack"] = ["flax_bad_dtype.msgpack", "complex64"]
with open(os.path.join(OUT, "flax_short.msgpack"), "wb") as f:
    payload = msgpack.packb(([4, 4], "float32", b"\0" * 8), use_bin_type=True)
    f.write(msgpack.packb({"x": msgpack.ExtType(1, payload)}, use_bin_type=True))
expected["errors"]["flax_short.msgpack"] = ["flax_short.msgpack", "x"]

with open(os.path.join(OUT, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1, sort_keys=True)
    f.write("\n")
print("wrote", OUT, sorted(os.listdir(OUT)))
