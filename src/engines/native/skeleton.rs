//! The layers imagespec writes itself, without uv: the small first layer (the venv, the user
//! 1000 and `/root`) and, last, the spec's own files (its `copy` entries and its source).

use super::layers::{self, Compression, Content, Layer, LayerSpec};
use super::python::BaseFacts;
use crate::dockerfile::recipe::Recipe;
use crate::dockerfile::{USER_UID, VENV};
use crate::error::Result;
use crate::source::FileKind;
use std::path::Path;

/// The small first layer: `/opt/venv` as a virtualenv of the base's Python (unless the base has
/// one), the user 1000 (added to `/etc/passwd` and `/etc/group` unless the base has it, as
/// `useradd --create-home` would), and `/root` given to that user.
pub(super) fn skeleton(facts: &BaseFacts) -> LayerSpec {
    let mut ls = LayerSpec::default();
    let v = &facts.version;
    if !facts.has_venv {
        let home = Path::new(&facts.exe)
            .parent()
            .map_or("/usr/bin".into(), |p| p.to_string_lossy().into_owned());
        let cfg = format!("home = {home}\ninclude-system-site-packages = true\nversion = {v}\n");
        let venv = VENV.trim_start_matches('/');
        ls.add(
            &format!("{venv}/pyvenv.cfg"),
            Content::Bytes(cfg.into_bytes()),
            false,
            0,
        );
        ls.add(
            &format!("{venv}/bin/python"),
            Content::Symlink(facts.exe.clone()),
            false,
            0,
        );
        ls.add(
            &format!("{venv}/bin/python3"),
            Content::Symlink("python".into()),
            false,
            0,
        );
        ls.add(
            &format!("{venv}/bin/python{v}"),
            Content::Symlink("python".into()),
            false,
            0,
        );
        ls.add(
            &format!("{venv}/lib/python{v}/site-packages"),
            Content::Dir,
            true,
            0,
        );
        ls.add(&format!("{venv}/lib64"), Content::Symlink("lib".into()), false, 0);
    }
    if !facts.has_uid(USER_UID) && !facts.passwd.is_empty() {
        let mut passwd = facts.passwd.clone();
        if !passwd.ends_with('\n') {
            passwd.push('\n');
        }
        passwd.push_str(&format!(
            "imagespec:x:{USER_UID}:{USER_UID}::/home/imagespec:/bin/sh\n"
        ));
        ls.add("etc/passwd", Content::Bytes(passwd.into_bytes()), false, 0);
        if !facts.group.is_empty()
            && !facts
                .group
                .lines()
                .any(|l| l.split(':').nth(2) == Some(USER_UID.to_string().as_str()))
        {
            let mut group = facts.group.clone();
            if !group.ends_with('\n') {
                group.push('\n');
            }
            group.push_str(&format!("imagespec:x:{USER_UID}:\n"));
            ls.add("etc/group", Content::Bytes(group.into_bytes()), false, 0);
        }
        ls.dir("home", USER_UID, 0o755);
        ls.dir("home/imagespec", USER_UID, 0o755);
    }
    ls.dir("root", USER_UID, 0o755);
    ls
}

/// The layers of the `copy` entries and of the source, under `/root` (none when empty).
pub(super) fn files_layers(
    plan: &Recipe,
    work: &Path,
    mtime: u64,
    compression: Compression,
    step: &dyn Fn(&str),
) -> Result<Vec<Layer>> {
    let mut out = Vec::new();
    for (prefix, what) in [("copy/", "copy entries"), ("source/", "source")] {
        out.extend(files_layer(plan, prefix, what, work, mtime, compression, step)?);
    }
    Ok(out)
}

/// The layer of the selected files whose key starts with `prefix` (`copy/` or `source/`), under
/// `/root` and owned by the image's user; `None` when there are none.
pub(super) fn files_layer(
    plan: &Recipe,
    prefix: &str,
    what: &str,
    work: &Path,
    mtime: u64,
    compression: Compression,
    step: &dyn Fn(&str),
) -> Result<Option<Layer>> {
    let mut ls = LayerSpec::default();
    for f in plan.selection.values() {
        if let Some(rest) = f.key.strip_prefix(prefix) {
            let content = match &f.file.kind {
                FileKind::Missing => return Err(crate::identity::missing_file(f)),
                FileKind::Symlink { target } => Content::Symlink(target.clone()),
                FileKind::Regular { sha256, .. } => Content::File {
                    path: f.path.clone(),
                    expect: Some(*sha256),
                },
            };
            let exe = matches!(f.file.kind, FileKind::Regular { executable: true, .. });
            ls.add(&format!("root/{rest}"), content, exe, USER_UID);
        }
    }
    if ls.is_empty() {
        return Ok(None);
    }
    ls.dir("root", USER_UID, 0o755);
    step(&format!("layer: {what}"));
    layers::build_layer(
        &ls,
        work,
        &format!("imagespec: {what} to /root"),
        mtime,
        compression,
        None,
    )
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skeleton_makes_a_venv_and_the_user() {
        let facts = BaseFacts {
            version: "3.11".into(),
            exe: "/usr/bin/python3.11".into(),
            has_venv: false,
            glibc_minor: Some(36),
            musl: false,
            passwd: "root:x:0:0:root:/root:/bin/bash\n".into(),
            group: "root:x:0:\n".into(),
        };
        let ls = skeleton(&facts);
        let keys: Vec<&str> = ls.entries.keys().map(String::as_str).collect();
        for k in [
            "opt/venv/pyvenv.cfg",
            "opt/venv/bin/python",
            "opt/venv/lib/python3.11/site-packages",
            "etc/passwd",
            "etc/group",
            "root",
        ] {
            assert!(keys.contains(&k), "{k} in {keys:?}");
        }
        match &ls.entries["etc/passwd"].content {
            Content::Bytes(b) => assert!(
                String::from_utf8_lossy(b).ends_with("imagespec:x:1000:1000::/home/imagespec:/bin/sh\n")
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(ls.dirs["root"], (1000, 0o755));
    }
}
