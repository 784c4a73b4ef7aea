"""Python stubs of the rankdistill.v1 gRPC contract, generated at run time with grpcio-tools.

The generated modules are never committed: `load()` compiles proto/proto/rankdistill/v1/*.proto
into a build folder (default: examples/python/build/stubs) under a key of the proto contents and
the grpcio-tools version, so a changed proto or tool regenerates, and an unchanged one is reused.
Concurrent callers are safe: each generates into a private staging folder that is renamed into
place, and a loser of the race uses the winner's copy.

    import rdproto
    pb = rdproto.load()
    stub = pb.teacher_grpc.TeacherServiceStub(channel)
    stub.Rank(pb.teacher.RankRequest(query=pb.common.Query(user_id="196"), k=10))
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
#: The repository's proto root (holds rankdistill/v1/*.proto).
DEFAULT_PROTO_ROOT = HERE.parent.parent / "proto" / "proto"
#: Where stubs are generated unless the caller says otherwise.
DEFAULT_BUILD_DIR = HERE / "build" / "stubs"


def _key(protos: list[Path], proto_root: Path) -> str:
    import grpc_tools

    digest = hashlib.sha256()
    version = getattr(grpc_tools, "__version__", "")
    if not version:
        from importlib.metadata import version as dist_version

        version = dist_version("grpcio-tools")
    digest.update(version.encode())
    for proto in protos:
        digest.update(str(proto.relative_to(proto_root)).encode())
        digest.update(proto.read_bytes())
    return digest.hexdigest()[:16]


def generate(proto_root: Path = DEFAULT_PROTO_ROOT, build_dir: Path = DEFAULT_BUILD_DIR) -> Path:
    """Generates the stubs (when not already there) and returns the folder that holds them."""
    from grpc_tools import protoc

    proto_root = Path(proto_root).resolve()
    protos = sorted(proto_root.glob("rankdistill/v1/*.proto"))
    if not protos:
        raise SystemExit(f"no rankdistill/v1/*.proto under {proto_root}: pass --proto-root")
    out = Path(build_dir) / _key(protos, proto_root)
    if (out / ".complete").exists():
        return out
    Path(build_dir).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=build_dir))
    try:
        # The well-known types (google/protobuf/*.proto) ship inside grpc_tools.
        well_known = Path(protoc.__file__).resolve().parent / "_proto"
        args = [
            "grpc_tools.protoc",
            f"-I{proto_root}",
            f"-I{well_known}",
            f"--python_out={staging}",
            f"--pyi_out={staging}",
            f"--grpc_python_out={staging}",
            *[str(p.relative_to(proto_root)) for p in protos],
        ]
        cwd = os.getcwd()
        try:
            os.chdir(proto_root)
            code = protoc.main(args)
        finally:
            os.chdir(cwd)
        if code != 0:
            raise SystemExit(f"grpc_tools.protoc failed ({code}) on {proto_root}")
        (staging / ".complete").touch()
        try:
            staging.rename(out)
        except OSError:
            # Another process put the same stubs in place first.
            if not (out / ".complete").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def load(proto_root: Path = DEFAULT_PROTO_ROOT, build_dir: Path = DEFAULT_BUILD_DIR) -> SimpleNamespace:
    """Generates (if needed) and imports the stubs: `.common`, `.teacher`, `.teacher_grpc`,
    `.student`, `.student_grpc`."""
    out = generate(proto_root, build_dir)
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    modules = {
        "common": "rankdistill.v1.common_pb2",
        "teacher": "rankdistill.v1.teacher_pb2",
        "teacher_grpc": "rankdistill.v1.teacher_pb2_grpc",
        "student": "rankdistill.v1.student_pb2",
        "student_grpc": "rankdistill.v1.student_pb2_grpc",
    }
    return SimpleNamespace(**{name: importlib.import_module(mod) for name, mod in modules.items()})
