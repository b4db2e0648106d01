"""Writes a Wasm module as an OCI image archive that Istio's agent can pull.

Istio accepts two image layouts for a WasmPlugin `oci://` url. This writes the
OCI-spec one (the layout `oras push` makes): a manifest whose config has media
type `application/vnd.module.wasm.config.v1+json` and whose one layer is the
module itself, `application/vnd.module.wasm.content.layer.v1+wasm`. The result
is an OCI image layout (oci-layout, index.json, blobs/sha256/...) packed as a
tar, which `skopeo copy oci-archive:FILE docker://REGISTRY/NAME:TAG` or
`oras cp --from-oci-layout` pushes. Everything is content-addressed and no
timestamp goes in, so the same module always gives the same digests.

    python3 scripts/lib/wasm_oci.py MODULE.wasm REF OUT.tar
prints the manifest digest (what the registry will report for the tag).
"""

import hashlib
import io
import json
import sys
import tarfile

CONFIG_TYPE = "application/vnd.module.wasm.config.v1+json"
LAYER_TYPE = "application/vnd.module.wasm.content.layer.v1+wasm"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"


def descriptor(media_type, blob, annotations=None):
    d = {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(blob).hexdigest(), "size": len(blob)}
    if annotations:
        d["annotations"] = annotations
    return d


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def main(module_path, ref, out_path):
    module = open(module_path, "rb").read()
    name = module_path.rsplit("/", 1)[-1]
    config = canonical({})
    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": CONFIG_TYPE,
        "config": descriptor(CONFIG_TYPE, config),
        "layers": [descriptor(LAYER_TYPE, module, {"org.opencontainers.image.title": name})],
    })
    manifest_desc = descriptor(MANIFEST_TYPE, manifest, {"org.opencontainers.image.ref.name": ref})
    index = canonical({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": [manifest_desc]})
    with tarfile.open(out_path, "w", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "oci-layout", canonical({"imageLayoutVersion": "1.0.0"}))
        add(tar, "index.json", index)
        for blob in (config, module, manifest):
            add(tar, "blobs/sha256/" + hashlib.sha256(blob).hexdigest(), blob)
    print(manifest_desc["digest"])


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
