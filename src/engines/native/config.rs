//! The image config (the base's, plus the environment, user, working folder, entrypoint, labels,
//! new layers and history), the OCI manifest, and the index of several platforms' manifests.

use super::base::{oci_layer_type, Base, Descriptor};
use super::layers::Layer;
use crate::dockerfile::{USER_UID, VENV};
use crate::oci::{sha256_of, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use serde_json::{json, Map, Value};

/// What the config says besides the base's.
pub struct ImageMeta<'a> {
    pub env: &'a std::collections::BTreeMap<String, String>,
    pub entrypoint: Option<&'a [String]>,
    pub labels: Vec<(&'static str, String)>,
    pub id: &'a str,
    /// flytekit's id when the image is built for a flytekit spec (`BuildOptions::flytekit_ids`).
    pub flytekit_id: Option<&'a str>,
    /// RFC 3339 time of the new history entries and of `created`.
    pub created: String,
}

/// `SOURCE_DATE_EPOCH` (or 0) as RFC 3339.
pub fn rfc3339(epoch: u64) -> String {
    let days = epoch / 86_400;
    let secs = epoch % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn set_env(env: &mut Vec<(String, String)>, k: &str, v: String) {
    match env.iter_mut().find(|(key, _)| key == k) {
        Some(slot) => slot.1 = v,
        None => env.push((k.to_owned(), v)),
    }
}

/// The config of the new image as canonical JSON bytes (sorted keys, no spaces).
pub fn config(base: &Base, layers: &[Layer], meta: &ImageMeta<'_>) -> Vec<u8> {
    let mut cfg = base.config.clone();
    let obj = cfg.as_object_mut().expect("a config is an object");
    let mut c: Map<String, Value> = obj
        .get("config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut env: Vec<(String, String)> = c
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    let venv_bin = format!("{VENV}/bin");
    let path = if path.split(':').next() == Some(venv_bin.as_str()) {
        path
    } else {
        format!("{venv_bin}:{path}")
    };
    set_env(&mut env, "VIRTUAL_ENV", VENV.to_owned());
    set_env(&mut env, "PATH", path);
    for (k, v) in meta.env {
        set_env(&mut env, k, v.clone());
    }
    if !meta.env.contains_key("PYTHONPATH") {
        set_env(&mut env, "PYTHONPATH", "/root".into());
    }
    for (k, v) in crate::dockerfile::image_id_env(meta.id, meta.flytekit_id) {
        set_env(&mut env, k, v);
    }
    c.insert(
        "Env".into(),
        Value::Array(
            env.into_iter()
                .map(|(k, v)| Value::String(format!("{k}={v}")))
                .collect(),
        ),
    );
    c.insert("User".into(), Value::String(USER_UID.to_string()));
    c.insert("WorkingDir".into(), Value::String("/root".into()));
    if let Some(ep) = meta.entrypoint {
        // As in a Dockerfile: a new ENTRYPOINT drops the base's CMD.
        c.insert(
            "Entrypoint".into(),
            if ep.is_empty() { Value::Null } else { json!(ep) },
        );
        c.remove("Cmd");
    }
    let mut labels: Map<String, Value> = c
        .get("Labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (k, v) in &meta.labels {
        labels.insert((*k).to_owned(), Value::String(v.clone()));
    }
    c.insert("Labels".into(), Value::Object(labels));
    obj.insert("config".into(), Value::Object(c));
    obj.insert("created".into(), Value::String(meta.created.clone()));
    let mut diff_ids: Vec<Value> = obj
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    diff_ids.extend(layers.iter().map(|l| Value::String(l.diff_id.clone())));
    obj.insert("rootfs".into(), json!({"type": "layers", "diff_ids": diff_ids}));
    let mut history: Vec<Value> = obj
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for l in layers {
        history.push(json!({
            "created": meta.created,
            "created_by": l.created_by,
            "comment": "imagespec native builder",
        }));
    }
    history.push(json!({
        "created": meta.created,
        "created_by": "imagespec: env, user, workdir, entrypoint, labels",
        "empty_layer": true,
    }));
    obj.insert("history".into(), Value::Array(history));
    obj.remove("container_config");
    obj.remove("container");
    obj.remove("docker_version");
    obj.remove("parent");
    obj.remove("id");
    serde_json::to_vec(&sort(cfg)).expect("JSON")
}

/// Keys sorted at every level, whatever map type serde_json was built with.
fn sort(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut items: Vec<(String, Value)> = m.into_iter().collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(items.into_iter().map(|(k, v)| (k, sort(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sort).collect()),
        other => other,
    }
}

/// The OCI manifest: the base's layers (Docker media types mapped to OCI's), then the new ones.
pub fn manifest(base: &Base, layers: &[Layer], config: &[u8]) -> Vec<u8> {
    let mut all: Vec<Descriptor> = base
        .layers
        .iter()
        .map(|d| Descriptor {
            media_type: oci_layer_type(&d.media_type),
            ..d.clone()
        })
        .collect();
    all.extend(layers.iter().map(|l| Descriptor {
        media_type: l.media_type.clone(),
        digest: l.digest.clone(),
        size: l.size,
    }));
    let m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": sha256_of(config),
            "size": config.len(),
        },
        "layers": all,
    });
    serde_json::to_vec(&sort(m)).expect("JSON")
}

/// The OCI index of several platforms' images, in the order given: each entry has the
/// manifest's digest and size and the platform its config declares (`os`, `architecture`,
/// `variant`), so that a client picks its own.
pub fn index(images: &[(&[u8], &[u8])]) -> Vec<u8> {
    let manifests: Vec<Value> = images
        .iter()
        .map(|(manifest, config)| {
            let cfg: Value = serde_json::from_slice(config).unwrap_or_default();
            let mut platform = Map::new();
            for (from, to) in [
                ("architecture", "architecture"),
                ("os", "os"),
                ("variant", "variant"),
            ] {
                if let Some(v) = cfg.get(from).and_then(Value::as_str) {
                    platform.insert(to.into(), Value::String(v.to_owned()));
                }
            }
            json!({
                "mediaType": OCI_MANIFEST,
                "digest": sha256_of(manifest),
                "size": manifest.len(),
                "platform": platform,
            })
        })
        .collect();
    let i = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    serde_json::to_vec(&sort(i)).expect("JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Reference;
    use std::collections::BTreeMap;

    fn base() -> Base {
        Base {
            reference: Reference::parse("localhost:5000/base:1").unwrap(),
            digest: "sha256:00".into(),
            config: json!({
                "architecture": "amd64", "os": "linux",
                "config": {"Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"], "Cmd": ["python3"], "Labels": {"a": "b"}},
                "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]},
                "history": [{"created_by": "base"}],
            }),
            config_digest: "sha256:cc".into(),
            layers: vec![Descriptor {
                media_type: crate::oci::DOCKER_LAYER_GZIP.into(),
                digest: "sha256:bb".into(),
                size: 10,
            }],
        }
    }

    #[test]
    fn config_and_manifest_json() {
        let layer = Layer {
            digest: "sha256:dd".into(),
            diff_id: "sha256:ee".into(),
            size: 5,
            path: "/x".into(),
            created_by: "imagespec: source".into(),
            media_type: crate::oci::OCI_LAYER_GZIP.into(),
        };
        let env: BTreeMap<String, String> = [("Debug".to_owned(), "True".to_owned())].into();
        let ep = vec!["python".to_owned()];
        let meta = ImageMeta {
            env: &env,
            entrypoint: Some(&ep),
            labels: vec![("dev.imagespec.id", "theid".into())],
            id: "theid",
            flytekit_id: None,
            created: rfc3339(0),
        };
        let cfg = config(&base(), std::slice::from_ref(&layer), &meta);
        let v: Value = serde_json::from_slice(&cfg).unwrap();
        assert_eq!(
            v["config"]["Env"],
            json!([
                "PATH=/opt/venv/bin:/usr/bin:/bin",
                "LANG=C.UTF-8",
                "VIRTUAL_ENV=/opt/venv",
                "Debug=True",
                "PYTHONPATH=/root",
                "_F_IMG_ID=theid"
            ])
        );
        assert_eq!(v["config"]["User"], "1000");
        assert_eq!(v["config"]["WorkingDir"], "/root");
        assert_eq!(v["config"]["Entrypoint"], json!(["python"]));
        assert!(v["config"].get("Cmd").is_none());
        assert_eq!(
            v["config"]["Labels"],
            json!({"a": "b", "dev.imagespec.id": "theid"})
        );
        assert_eq!(v["rootfs"]["diff_ids"], json!(["sha256:aa", "sha256:ee"]));
        assert_eq!(v["created"], "1970-01-01T00:00:00Z");
        assert_eq!(v["history"].as_array().unwrap().len(), 3);
        assert!(
            String::from_utf8_lossy(&cfg).starts_with(r#"{"architecture":"amd64","config":{"#),
            "canonical JSON"
        );
        let m: Value = serde_json::from_slice(&manifest(&base(), &[layer], &cfg)).unwrap();
        assert_eq!(m["mediaType"], OCI_MANIFEST);
        assert_eq!(m["config"]["mediaType"], OCI_CONFIG);
        assert_eq!(m["layers"][0]["mediaType"], crate::oci::OCI_LAYER_GZIP);
        assert_eq!(m["layers"][1]["digest"], "sha256:dd");
    }

    #[test]
    fn index_lists_each_platform_in_order() {
        let a = br#"{"architecture":"arm64","os":"linux","variant":"v8"}"#;
        let b = br#"{"architecture":"amd64","os":"linux"}"#;
        let i: Value = serde_json::from_slice(&index(&[(b"m1", a), (b"m2", b)])).unwrap();
        assert_eq!(i["mediaType"], OCI_INDEX);
        assert_eq!(
            i["manifests"][0]["platform"],
            json!({"architecture": "arm64", "os": "linux", "variant": "v8"})
        );
        assert_eq!(i["manifests"][1]["platform"]["architecture"], "amd64");
        assert_eq!(i["manifests"][1]["digest"], sha256_of(b"m2"));
        assert_eq!(i["manifests"][1]["size"], 2);
    }

    #[test]
    fn a_flytekit_specs_image_carries_flytekits_id_and_ours() {
        let env = BTreeMap::new();
        let meta = ImageMeta {
            env: &env,
            entrypoint: None,
            labels: vec![],
            id: "theid",
            flytekit_id: Some("fkid"),
            created: rfc3339(0),
        };
        let v: Value = serde_json::from_slice(&config(&base(), &[], &meta)).unwrap();
        let all = v["config"]["Env"].as_array().unwrap();
        assert_eq!(
            all[all.len() - 2..],
            [json!("IMAGESPEC_IMG_ID=theid:fkid"), json!("_F_IMG_ID=fkid")]
        );
    }

    #[test]
    fn epoch_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
