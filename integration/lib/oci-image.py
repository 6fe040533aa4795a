#!/usr/bin/env python3
"""Builds one-layer OCI images as image layout directories, and archives them for import.

  oci-image.py image   LAYOUT NAME:TAG --busybox PATH [--variant V] [--cmd JSON]
  oci-image.py index   LAYOUT NAME:TAG --busybox PATH [--variant V] [--cmd JSON]
  oci-image.py dir     LAYOUT NAME:TAG --rootfs DIR [--entrypoint JSON] [--cmd JSON] [--user U]
  oci-image.py archive LAYOUT NAME    > layout.tar    (for `ctr images import`)
  oci-image.py files   LAYOUT         its image's Entrypoint, Cmd, User and files ("path type
                                      mode size" lines)

`dir` makes the image of a directory tree (scripts/image.sh: image-compat's own image): every
entry owned by root, dated EPOCH, modes kept, so the digest depends on the files alone.
`files` lists the layers of the one image in LAYOUT's index.json (an image built here or by
buildah/docker), upper layers over lower ones, for comparing what two builds put in an image.

`image` and `index` make LAYOUT hold exactly that one image (index.json has one entry, annotated
with org.opencontainers.image.ref.name = NAME:TAG; older blobs stay, unreferenced) and print its
digest. `index` makes a linux/amd64 + linux/arm64 image index; the arm64 entry reuses the amd64
layer (registry tests only: it does not run on arm64). Output is deterministic: same inputs, same
digests. A --variant adds /etc/image-compat-variant and a config label, so tests get distinct
images. `archive` streams the layout as a tar whose index entry also carries
io.containerd.image.name = NAME, which is the name `ctr images import` gives the image.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

# Applets linked to /bin/busybox: what tests and the pause image run.
APPLETS = [
    "[", "cat", "chmod", "cp", "cut", "date", "dd", "echo", "env", "false", "grep", "head",
    "hostname", "id", "kill", "ln", "ls", "mkdir", "mount", "mv", "nproc", "printf", "ps", "pwd",
    "rm", "sed", "sh", "sleep", "sort", "stat", "tail", "test", "touch", "tr", "true", "uname",
    "wc", "which",
]
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
VARIANT_LABEL = "io.image-compat.test.variant"
# Fixed so that the same inputs always give the same digests.
EPOCH = 0
CREATED = "1970-01-01T00:00:00Z"


def canonical(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


class Layout:
    def __init__(self, root):
        self.root = root
        os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
        write_file(os.path.join(root, "oci-layout"), canonical({"imageLayoutVersion": "1.0.0"}))

    def put(self, media_type, data, **extra):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if not os.path.exists(path):
            write_file(path, data)
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def blob_path(self, digest):
        algo, _, hexd = digest.partition(":")
        return os.path.join(self.root, "blobs", algo, hexd)

    def set_index(self, desc):
        write_file(
            os.path.join(self.root, "index.json"),
            canonical({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [desc]}),
        )


def write_file(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def tar_entry(tar, name, kind, data=b"", mode=0o644, target=""):
    info = tarfile.TarInfo(name)
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = mode
    info.type = kind
    if kind == tarfile.SYMTYPE:
        info.linkname = target
        tar.addfile(info)
    elif kind == tarfile.DIRTYPE:
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def rootfs_tar(busybox, variant):
    """The layer, uncompressed: busybox, its applet links, a minimal /etc."""
    with open(busybox, "rb") as f:
        binary = f.read()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d, mode in [("bin", 0o755), ("dev", 0o755), ("etc", 0o755), ("proc", 0o555),
                        ("root", 0o700), ("sys", 0o555), ("tmp", 0o1777), ("var", 0o755)]:
            tar_entry(tar, d, tarfile.DIRTYPE, mode=mode)
        tar_entry(tar, "bin/busybox", tarfile.REGTYPE, binary, mode=0o755)
        for applet in APPLETS:
            tar_entry(tar, "bin/" + applet, tarfile.SYMTYPE, target="busybox", mode=0o777)
        tar_entry(tar, "etc/passwd", tarfile.REGTYPE, b"root:x:0:0:root:/root:/bin/sh\n")
        tar_entry(tar, "etc/group", tarfile.REGTYPE, b"root:x:0:\n")
        if variant:
            tar_entry(tar, "etc/image-compat-variant", tarfile.REGTYPE, variant.encode() + b"\n")
    return buf.getvalue()


def dir_tar(root):
    """The layer of a directory tree, uncompressed, entries sorted; only regular files,
    directories and symbolic links (what an image of a binary and its files holds)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                st = os.lstat(path)
                mode = st.st_mode & 0o7777
                if os.path.islink(path):
                    tar_entry(tar, rel, tarfile.SYMTYPE, target=os.readlink(path), mode=0o777)
                elif os.path.isdir(path):
                    tar_entry(tar, rel, tarfile.DIRTYPE, mode=mode)
                elif os.path.isfile(path):
                    with open(path, "rb") as f:
                        tar_entry(tar, rel, tarfile.REGTYPE, f.read(), mode=mode)
                else:
                    sys.exit(f"oci-image.py: {path}: not a file, directory or symlink")
    return buf.getvalue()


def layer(layout, busybox, variant, raw=None):
    if raw is None:
        raw = rootfs_tar(busybox, variant)
    # mtime=0 and no file name in the gzip header keep the compressed digest stable.
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, filename="") as z:
        z.write(raw)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    return layout.put(MT_LAYER, gz.getvalue()), diff_id


def manifest(layout, layer_desc, diff_id, arch, variant, cmd, extra=None, labels=None):
    if labels is None:
        labels = {VARIANT_LABEL: variant} if variant else {}
    config = {
        "architecture": arch,
        "os": "linux",
        "created": CREATED,
        "config": {
            "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": cmd,
            "WorkingDir": "/",
            "Labels": labels,
            **(extra or {}),
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": CREATED, "created_by": "integration/lib/oci-image.py"}],
    }
    config_desc = layout.put(MT_CONFIG, canonical(config))
    doc = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": config_desc,
        "layers": [layer_desc],
    }
    return layout.put(MT_MANIFEST, canonical(doc), platform={"architecture": arch, "os": "linux"})


def json_args(flag, text):
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        sys.exit(f"oci-image.py: {flag} must be a JSON array of strings")
    return value


def build_dir(args):
    layout = Layout(args.layout)
    layer_desc, diff_id = layer(layout, None, None, raw=dir_tar(args.rootfs))
    extra = {"User": args.user}
    if args.entrypoint:
        extra["Entrypoint"] = json_args("--entrypoint", args.entrypoint)
    labels = dict(kv.split("=", 1) for kv in args.label)
    top = manifest(layout, layer_desc, diff_id, args.arch, "", json_args("--cmd", args.cmd),
                   extra, labels)
    top = {k: v for k, v in top.items() if k != "platform"}
    top["annotations"] = {REF_NAME: args.name}
    layout.set_index(top)
    print(top["digest"])


def files(args):
    """Each layer's entries, applied in order (a later layer's entry replaces an earlier one;
    whiteouts remove), as sorted "path type mode size" lines."""
    layout = Layout(args.layout)
    with open(os.path.join(args.layout, "index.json"), "rb") as f:
        index = json.load(f)
    if len(index.get("manifests", [])) != 1:
        sys.exit(f"oci-image.py: {args.layout}: expected one image in index.json")
    with open(layout.blob_path(index["manifests"][0]["digest"]), "rb") as f:
        doc = json.load(f)
    with open(layout.blob_path(doc["config"]["digest"]), "rb") as f:
        run = json.load(f).get("config", {})
    # What the image runs, first: two builds of one image must agree on it too.
    for key in ("Entrypoint", "Cmd", "User"):
        print(f"# {key} {json.dumps(run.get(key))}")
    entries = {}
    for desc in doc["layers"]:
        with tarfile.open(layout.blob_path(desc["digest"]), mode="r:*") as tar:
            for m in tar:
                name = os.path.normpath("/" + m.name).lstrip("/") or "."
                base = os.path.basename(name)
                if base.startswith(".wh."):
                    gone = os.path.join(os.path.dirname(name), base[4:])
                    entries = {k: v for k, v in entries.items()
                               if k != gone and not k.startswith(gone + "/")}
                    continue
                if name == ".":
                    continue
                kind = "d" if m.isdir() else "l" if m.issym() else "f" if m.isfile() else "?"
                size = m.size if m.isfile() else 0
                target = " -> " + m.linkname if m.issym() else ""
                entries[name] = f"{name} {kind} {m.mode & 0o7777:04o} {size}{target}"
    for name in sorted(entries):
        print(entries[name])


def build(args, multi):
    layout = Layout(args.layout)
    cmd = json_args("--cmd", args.cmd)
    layer_desc, diff_id = layer(layout, args.busybox, args.variant)
    amd64 = manifest(layout, layer_desc, diff_id, "amd64", args.variant, cmd)
    if multi:
        arm64 = manifest(layout, layer_desc, diff_id, "arm64", args.variant, cmd)
        top = layout.put(MT_INDEX, canonical(
            {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [amd64, arm64]}))
    else:
        top = {k: v for k, v in amd64.items() if k != "platform"}
    top["annotations"] = {REF_NAME: args.name}
    layout.set_index(top)
    print(top["digest"])


def reachable(layout, desc, out):
    """Adds the digests of desc and everything it references to out."""
    out.add(desc["digest"])
    if desc["mediaType"] not in (MT_MANIFEST, MT_INDEX):
        return
    with open(layout.blob_path(desc["digest"]), "rb") as f:
        doc = json.load(f)
    for child in doc.get("manifests", []) + doc.get("layers", []):
        reachable(layout, child, out)
    if "config" in doc:
        reachable(layout, doc["config"], out)


def archive(args):
    layout = Layout(args.layout)
    with open(os.path.join(args.layout, "index.json"), "rb") as f:
        index = json.load(f)
    if len(index.get("manifests", [])) != 1:
        sys.exit(f"oci-image.py: {args.layout}: expected one image in index.json")
    top = index["manifests"][0]
    top.setdefault("annotations", {})[CONTAINERD_NAME] = args.name
    top["annotations"][REF_NAME] = args.name
    blobs = set()
    reachable(layout, top, blobs)
    with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar_entry(tar, "oci-layout", tarfile.REGTYPE, canonical({"imageLayoutVersion": "1.0.0"}))
        tar_entry(tar, "index.json", tarfile.REGTYPE, canonical(index))
        for digest in sorted(blobs):
            with open(layout.blob_path(digest), "rb") as f:
                tar_entry(tar, "blobs/sha256/" + digest.split(":", 1)[1], tarfile.REGTYPE,
                          f.read())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    for what in ("image", "index"):
        s = sub.add_parser(what)
        s.add_argument("layout")
        s.add_argument("name", help="NAME:TAG, recorded as the layout's ref name")
        s.add_argument("--busybox", required=True, help="a static busybox binary")
        s.add_argument("--variant", default="", help="makes a distinct image")
        s.add_argument("--cmd", default='["/bin/sh"]', help="JSON array: the image's Cmd")
    s = sub.add_parser("dir")
    s.add_argument("layout")
    s.add_argument("name", help="NAME:TAG, recorded as the layout's ref name")
    s.add_argument("--rootfs", required=True, help="the directory tree of the image's files")
    s.add_argument("--entrypoint", default="", help="JSON array: the image's Entrypoint")
    s.add_argument("--cmd", default="[]", help="JSON array: the image's Cmd")
    s.add_argument("--user", default="0:0")
    s.add_argument("--arch", default="amd64")
    s.add_argument("--label", action="append", default=[], help="KEY=VALUE (repeatable)")
    s = sub.add_parser("archive")
    s.add_argument("layout")
    s.add_argument("name", help="the image name containerd gives the imported image")
    s = sub.add_parser("files")
    s.add_argument("layout")
    args = p.parse_args()
    if args.what == "archive":
        archive(args)
    elif args.what == "dir":
        build_dir(args)
    elif args.what == "files":
        files(args)
    else:
        build(args, multi=args.what == "index")


if __name__ == "__main__":
    main()
