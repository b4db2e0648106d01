//! `scripts/package` (without the service images, which the Docker suite
//! builds): every file in dist/ is listed in SHA256SUMS and manifest.json
//! with its real digest, every built module is there, each OCI archive holds
//! its module as the Wasm layer Istio pulls, and the Istio manifests name
//! the archives' references with the modules' sha256.

use meshguard_harness::paths::{built_plugins, workspace_root};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    files
}

/// The blobs of an OCI image layout archive, by digest, and its index.
fn read_oci_archive(path: &Path) -> (Value, BTreeMap<String, Vec<u8>>) {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut index = Value::Null;
    let mut blobs = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if name == "index.json" {
            index = serde_json::from_slice(&data).unwrap();
        } else if let Some(digest) = name.strip_prefix("blobs/sha256/") {
            assert_eq!(sha256_hex(&data), digest, "{name} is not its digest");
            blobs.insert(format!("sha256:{digest}"), data);
        }
    }
    (index, blobs)
}

#[test]
fn package_writes_dist_whose_digests_match_and_whose_manifests_reference_it() {
    let out = tempfile::tempdir().unwrap();
    let dist = out.path().join("dist");
    let status = Command::new(workspace_root().join("scripts/package"))
        .args([
            "--no-images",
            "--registry",
            "oci://registry.example/meshguard",
            "--out",
        ])
        .arg(&dist)
        .status()
        .expect("scripts/package");
    assert!(status.success(), "scripts/package failed");

    // SHA256SUMS and manifest.json list every other file with its digest.
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    let listed: BTreeMap<String, String> = sums
        .lines()
        .map(|l| {
            let (digest, path) = l.split_once("  ").expect("sha256sum line");
            (path.to_string(), digest.to_string())
        })
        .collect();
    let on_disk: Vec<String> = files_under(&dist)
        .into_iter()
        .filter(|f| f != "SHA256SUMS" && f != "manifest.json")
        .collect();
    assert_eq!(listed.keys().cloned().collect::<Vec<_>>(), on_disk);
    for (path, digest) in &listed {
        let bytes = std::fs::read(dist.join(path)).unwrap();
        assert_eq!(&sha256_hex(&bytes), digest, "{path}");
    }
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dist.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["version"], env!("CARGO_PKG_VERSION"));
    assert!(manifest["envoy"]
        .as_str()
        .is_some_and(|v| v.starts_with("1.")));
    assert_eq!(manifest["files"].as_object().unwrap().len(), listed.len());
    for (path, digest) in &listed {
        assert_eq!(manifest["files"][path], *digest.as_str(), "{path}");
    }

    // Every built module, byte for byte, with its OCI archive.
    let built = built_plugins();
    assert!(built.iter().any(|p| p.ends_with("meshguard_chain.wasm")));
    for wasm in &built {
        let file = wasm.file_name().unwrap().to_string_lossy().into_owned();
        let shipped = std::fs::read(dist.join("plugins").join(&file)).unwrap();
        assert_eq!(shipped, std::fs::read(wasm).unwrap(), "{file}");
        let name = file
            .trim_start_matches("meshguard_")
            .trim_end_matches(".wasm");
        let archive = dist.join("oci").join(format!(
            "meshguard-{name}-{}.oci.tar",
            env!("CARGO_PKG_VERSION")
        ));
        let (index, blobs) = read_oci_archive(&archive);
        let descriptor = &index["manifests"][0];
        assert_eq!(
            descriptor["annotations"]["org.opencontainers.image.ref.name"],
            format!(
                "registry.example/meshguard/meshguard-{name}:{}",
                env!("CARGO_PKG_VERSION")
            )
        );
        let image: Value =
            serde_json::from_slice(&blobs[descriptor["digest"].as_str().unwrap()]).unwrap();
        let layer = &image["layers"][0];
        assert_eq!(
            layer["mediaType"],
            "application/vnd.module.wasm.content.layer.v1+wasm"
        );
        assert_eq!(blobs[layer["digest"].as_str().unwrap()], shipped);
        assert_eq!(
            image["config"]["mediaType"],
            "application/vnd.module.wasm.config.v1+json"
        );
    }

    // The Istio manifests: each oci:// url names a packaged module, with its sha256.
    let mut referenced = 0;
    for file in files_under(&dist.join("istio")) {
        let text = std::fs::read_to_string(dist.join("istio").join(&file)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(url) = line.trim().strip_prefix("url: ") else {
                continue;
            };
            let name = url
                .strip_prefix("oci://registry.example/meshguard/meshguard-")
                .and_then(|rest| rest.strip_suffix(&format!(":{}", env!("CARGO_PKG_VERSION"))))
                .unwrap_or_else(|| panic!("{file}: {url} is not a packaged module"));
            let wasm = std::fs::read(dist.join(format!("plugins/meshguard_{name}.wasm"))).unwrap();
            assert_eq!(
                lines.get(i + 1).map(|l| l.trim()),
                Some(format!("sha256: {}", sha256_hex(&wasm)).as_str()),
                "{file}: the sha256 after {url}"
            );
            referenced += 1;
        }
    }
    assert!(referenced >= 1, "no WasmPlugin url in dist/istio");
}
