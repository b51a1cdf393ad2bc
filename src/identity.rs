//! A spec's identity (`id`, from its fields alone) and its content-derived tag.
//!
//! Both are roots of a tree of sub-digests (one per field, one per file), kept in `TagInputs`
//! so that a changed tag can be explained field by field and file by file. The scheme is
//! specified in docs/tag-scheme.md; changing anything here that changes a digest needs a new
//! scheme version and a new golden file.

use crate::error::{Error, Result};
use crate::redact::strip_userinfo;
use crate::source::{self, FileKind, SourceFile};
use crate::spec::project::{self, InstallMode, Project};
use crate::spec::{BaseImage, CopyMode, Spec};
use crate::value::Value;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

pub const ID_SCHEME: i64 = 1;
pub const TAG_SCHEME: i64 = 1;
/// Bytes of the root digest that the id and the tag carry: 160 bits.
const HASH_BYTES: usize = 20;
pub use crate::spec::HASH_CHARS;

pub type Digest = [u8; 32];

/// Everything a tag is made of, as sub-digests.
#[derive(Clone, Debug, PartialEq)]
pub struct TagInputs {
    pub id: String,
    pub id_root: Digest,
    /// One digest per identity field (every field that describes the image's content).
    pub fields: BTreeMap<&'static str, Digest>,
    /// One digest per file that goes into the image, keyed `requirements/…`, `source/…`, `copy/…`.
    pub files: BTreeMap<String, Digest>,
    /// The base image's full name when `base_image` is another spec.
    pub base_image: Option<String>,
    pub root: Digest,
    pub tag: String,
}

/// The fields that say what the image contains, by name, as canonical values.
/// Left out on purpose (where the image lives or how it is built, not what it is): name,
/// registry, registry_config, builder, builder_options, tag_format, pip_secret_mounts, force push,
/// and the absolute paths of source_root and requirements. URL credentials are left out of every
/// field (they name who may download, not what is installed, and a rotated token keeps the tag).
pub fn identity_fields(spec: &Spec) -> Vec<(&'static str, Value)> {
    let stripped = |s: &str| Value::Str(strip_userinfo(s));
    let stripped_all = |items: &[String]| Value::List(items.iter().map(|s| stripped(s)).collect());
    let mut fields = vec![
        ("python_version", Value::opt_str(spec.python_version.as_deref())),
        (
            "source_copy_mode",
            Value::str(spec.effective_copy_mode().as_str()),
        ),
        (
            "env",
            Value::Map(spec.env.iter().map(|(k, v)| (k.clone(), Value::str(v))).collect()),
        ),
        ("packages", stripped_all(&spec.packages)),
        ("conda_packages", Value::strs(&spec.conda_packages)),
        ("conda_channels", Value::strs(&spec.conda_channels)),
        (
            "requirements",
            Value::opt_str(spec.requirements.as_deref().and_then(file_name)),
        ),
        ("apt_packages", Value::strs(&spec.apt_packages)),
        ("cuda", Value::opt_str(spec.cuda.as_deref())),
        ("cudnn", Value::opt_str(spec.cudnn.as_deref())),
        (
            "base_image",
            match &spec.base_image {
                None => Value::Null,
                Some(BaseImage::Name(n)) => Value::str(n),
                Some(BaseImage::Spec(s)) => {
                    Value::Map([("spec_id".to_owned(), Value::Str(spec_id(s)))].into())
                }
            },
        ),
        ("platform", Value::str(&spec.platform)),
        (
            "pip_index",
            spec.pip_index.as_deref().map_or(Value::Null, stripped),
        ),
        ("pip_extra_index_url", stripped_all(&spec.pip_extra_index_url)),
        (
            "pip_extra_args",
            spec.pip_extra_args.as_deref().map_or(Value::Null, stripped),
        ),
        (
            "entrypoint",
            spec.entrypoint.as_ref().map_or(Value::Null, |e| Value::strs(e)),
        ),
        ("commands", Value::strs(&spec.commands)),
        (
            "copy",
            Value::List(
                spec.copy_sources()
                    .into_iter()
                    .map(|(_, rel)| Value::Str(rel))
                    .collect(),
            ),
        ),
        ("python_exec", Value::opt_str(spec.python_exec.as_deref())),
        ("runtime_packages", stripped_all(&spec.runtime_packages)),
        ("builder_config", Value::Map(spec.builder_config.clone())),
    ];
    // Fields added after scheme 1 count only when set, so that every spec without them keeps
    // its id and tag (docs/tag-scheme.md).
    let later = [
        ("project", project_value(spec)),
        (
            "project_install_mode",
            spec.project_install_mode
                .map_or(Value::Null, |m| Value::str(m.as_str())),
        ),
        ("overrides", stripped_all(&spec.overrides)),
        ("constraints", stripped_all(&spec.constraints)),
    ];
    fields.extend(later.into_iter().filter(|(k, v)| !crate::spec::is_unset(k, v)));
    fields
}

/// `project` as hashed: its kind and where its root lies among its files (the path on this
/// machine never counts). A project that cannot be read is left to the file selection to report.
fn project_value(spec: &Spec) -> Value {
    let Some(path) = &spec.project else {
        return Value::Null;
    };
    match project::read(path).and_then(|p| project_layout(spec, &p).map(|l| (p, l))) {
        Ok((p, layout)) => Value::Map(
            [
                ("kind".to_owned(), Value::str(p.kind.as_str())),
                ("root".to_owned(), Value::str(&layout.root_rel)),
            ]
            .into(),
        ),
        Err(_) => Value::str("unreadable"),
    }
}

/// Where a project's files are taken from: `anchor` (the project's root, or `source_root` when a
/// local package lies outside the root), and the root's path inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectLayout {
    pub anchor: PathBuf,
    /// POSIX, "." for the anchor itself.
    pub root_rel: String,
}

/// The [`ProjectLayout`] of `project`, refusing a local package that no allowed folder holds.
pub fn project_layout(spec: &Spec, project: &Project) -> Result<ProjectLayout> {
    let outside: Vec<&PathBuf> = project
        .locals
        .iter()
        .filter(|l| !l.starts_with(&project.root))
        .collect();
    let anchor = match (outside.first(), &spec.source_root) {
        (None, _) => project.root.clone(),
        (Some(_), Some(root)) => {
            let held = |p: &Path| p.starts_with(root);
            if let Some(out) = std::iter::once(&project.root)
                .chain(outside.iter().copied())
                .find(|p| !held(p))
            {
                return Err(Error::spec(
                    "project",
                    format!(
                        "{} lies outside source_root {}; every local package of the project (workspace \
                         members, path dependencies) is copied from a folder that holds them all: set \
                         source_root to one",
                        out.display(),
                        root.display()
                    ),
                ));
            }
            root.clone()
        }
        (Some(out), None) => {
            return Err(Error::spec(
                "project",
                format!(
                    "{} is a local package of the project {} but lies outside its folder; set source_root \
                     to a folder that holds the project and every local package (they are copied from there)",
                    out.display(),
                    project.root.display()
                ),
            ))
        }
    };
    let rel = project.root.strip_prefix(&anchor).unwrap_or(Path::new(""));
    let root_rel = match rel.to_str() {
        Some("") => ".".to_owned(),
        Some(s) => s.to_owned(),
        None => return Err(Error::source("project", &project.root, "is not a UTF-8 path")),
    };
    Ok(ProjectLayout { anchor, root_rel })
}

/// The project's files: its pyproject.toml and lock, every local package the lock names, and
/// with `install_project` the root folder, keyed `project/<path in the anchor>`.
fn project_files(spec: &Spec, out: &mut Selection) -> Result<()> {
    let Some(path) = &spec.project else {
        return Ok(());
    };
    let project = project::read(path)?;
    let layout = project_layout(spec, &project)?;
    let rel = |p: &Path| -> Result<String> {
        let r = p.strip_prefix(&layout.anchor).unwrap_or(Path::new(""));
        r.to_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::source("project", p, "is not a UTF-8 path"))
    };
    let field = "project";
    let root = &project.root;
    let install_project = spec.project_install_mode == Some(InstallMode::InstallProject);
    if install_project && !project.packaged {
        return Err(Error::spec(
            "project_install_mode",
            format!(
                "install_project needs a project that is a package, and {} is not one (a virtual \
                 workspace root, or poetry's package-mode = false); use dependencies_only",
                root.display()
            ),
        ));
    }
    let mut entries = vec![root.join("pyproject.toml"), root.join(project.kind.lock_name())];
    entries.extend(project.locals.iter().cloned());
    if install_project {
        entries.push(root.clone());
    }
    for entry in entries {
        let r = rel(&entry)?;
        if !entry.exists() {
            return Err(Error::source(
                field,
                &entry,
                "is named by the project's lock but does not exist; restore it, or lock the project again",
            ));
        }
        // A member that is a link out of the project would copy what it leads to (`~/.ssh`).
        if !r.is_empty() {
            source::check_inside(&layout.anchor, &r, field)?;
        }
        let files = if r.is_empty() {
            source::hash_all(&layout.anchor, field)?
        } else {
            source::hash_path(&layout.anchor, &r, field)?
        };
        add_files(out, field, &layout.anchor, files);
    }
    Ok(())
}

fn file_name(p: &Path) -> Option<&str> {
    p.file_name().and_then(|n| n.to_str())
}

fn field_digests(spec: &Spec) -> BTreeMap<&'static str, Digest> {
    identity_fields(spec)
        .into_iter()
        .map(|(name, value)| (name, Value::List(vec![Value::str(name), value]).digest()))
        .collect()
}

fn bytes_map<K: AsRef<str>>(digests: &BTreeMap<K, Digest>) -> Value {
    Value::Map(
        digests
            .iter()
            .map(|(k, d)| (k.as_ref().to_owned(), Value::Bytes(d.to_vec())))
            .collect(),
    )
}

fn id_root_of(fields: &BTreeMap<&'static str, Digest>) -> Digest {
    Value::List(vec![
        Value::str("imagespec-id"),
        Value::Int(ID_SCHEME),
        bytes_map(fields),
    ])
    .digest()
}

fn encode_hash(root: &Digest) -> String {
    data_encoding::BASE32_NOPAD
        .encode(&root[..HASH_BYTES])
        .to_ascii_lowercase()
}

/// The spec's identity: from its fields alone, no file read, nothing about the machine.
pub fn spec_id(spec: &Spec) -> String {
    encode_hash(&id_root_of(&field_digests(spec)))
}

fn file_digest(f: &SourceFile, buf: &mut Vec<u8>) -> Digest {
    use crate::value::stream;
    buf.clear();
    match &f.kind {
        FileKind::Regular { executable, sha256 } => {
            stream::list_header(buf, 4);
            stream::str(buf, "file");
            stream::str(buf, &f.path);
            stream::bool(buf, *executable);
            stream::bytes(buf, sha256);
        }
        FileKind::Symlink { target } => {
            stream::list_header(buf, 3);
            stream::str(buf, "symlink");
            stream::str(buf, &f.path);
            stream::str(buf, target);
        }
        FileKind::Missing => {
            stream::list_header(buf, 2);
            stream::str(buf, "missing");
            stream::str(buf, &f.path);
        }
    }
    Sha256::digest(&buf[..]).into()
}

/// `H(["imagespec-tag", scheme, recipe, bytes(id_root), {key: bytes(digest)}, base or null])`,
/// streamed: the file map can hold tens of thousands of entries.
fn tag_root(id_root: &Digest, files: &BTreeMap<String, Digest>, base_image: Option<&str>) -> Digest {
    use crate::value::stream;
    let mut out = Vec::with_capacity(128 + files.len() * 96);
    stream::list_header(&mut out, 6);
    stream::str(&mut out, "imagespec-tag");
    Value::Int(TAG_SCHEME).encode_into(&mut out);
    Value::Int(crate::RECIPE_VERSION).encode_into(&mut out);
    stream::bytes(&mut out, id_root);
    stream::map_header(&mut out, files.len());
    for (key, digest) in files {
        stream::str(&mut out, key);
        stream::bytes(&mut out, digest);
    }
    Value::opt_str(base_image).encode_into(&mut out);
    Sha256::digest(&out).into()
}

/// The tag of an image's dependencies: `imagespec-deps-<hash>`, over what the tag is made of
/// except the `source/` files, and the imagespec runtime the image gets (which the tag leaves
/// out). Two specs that differ only in their source files share it, so that the image without its
/// source layer, pushed under it, serves both (docs/builds.md).
pub fn deps_tag(inputs: &TagInputs, runtime: &str) -> String {
    let files = inputs
        .files
        .iter()
        .filter(|(k, _)| !k.starts_with("source/"))
        .map(|(k, d)| (k.clone(), Value::Bytes(d.to_vec())));
    let root = Value::List(vec![
        Value::str("imagespec-deps"),
        Value::Int(TAG_SCHEME),
        Value::Int(crate::RECIPE_VERSION),
        Value::Bytes(inputs.id_root.to_vec()),
        Value::Map(files.collect()),
        Value::opt_str(inputs.base_image.as_deref()),
        Value::str(runtime),
    ])
    .digest();
    format!("{DEPS_TAG_PREFIX}{}", encode_hash(&root))
}

/// What every dependencies tag starts with (no content tag does: those are the bare hash or
/// the spec's `tag_format`).
pub const DEPS_TAG_PREFIX: &str = "imagespec-deps-";

/// One file that goes into the image: its key in [`TagInputs::files`], where it is now, and the
/// facts that were hashed. The build context copies exactly these files.
#[derive(Clone, Debug, PartialEq)]
pub struct SelectedFile {
    /// `requirements/<name>`, `source/<path>` or `copy/<path>`.
    pub key: String,
    /// The file on this machine (for a symlink, the link itself).
    pub path: PathBuf,
    pub file: SourceFile,
}

pub type Selection = BTreeMap<String, SelectedFile>;

fn add_files(out: &mut Selection, prefix: &str, base: &Path, files: Vec<SourceFile>) {
    for f in files {
        let key = format!("{prefix}/{}", f.path);
        let path = base.join(&f.path);
        out.insert(key.clone(), SelectedFile { key, path, file: f });
    }
}

/// Files of `requirements`: the file itself and, for lock files, the pyproject.toml they need.
fn requirements_files(req: &Path, out: &mut Selection) -> Result<()> {
    let field = "requirements";
    let name = file_name(req).ok_or_else(|| Error::source(field, req, "has no file name"))?;
    let dir = req.parent().unwrap_or(Path::new("/"));
    if !req.is_file() {
        let msg = "does not exist or is not a file; fix the path (relative paths are resolved against the \
                   folder the spec was evaluated in)";
        return Err(Error::source(field, req, msg));
    }
    add_files(out, field, dir, source::hash_path(dir, name, field)?);
    if name == "uv.lock" || name == "poetry.lock" {
        let pyproject = dir.join("pyproject.toml");
        if !pyproject.is_file() {
            return Err(Error::source(
                field,
                &pyproject,
                format!("{name} needs the pyproject.toml beside it"),
            ));
        }
        add_files(out, field, dir, source::hash_path(dir, "pyproject.toml", field)?);
    }
    Ok(())
}

fn source_files(spec: &Spec, loaded: Option<&[PathBuf]>, out: &mut Selection) -> Result<()> {
    let Some(root) = &spec.source_root else {
        return Ok(());
    };
    let mode = spec.effective_copy_mode();
    if mode == CopyMode::NoCopy {
        return Ok(());
    }
    if !root.is_dir() {
        return Err(Error::source(
            "source_root",
            root,
            "is not a folder; fix the path or leave source_root unset",
        ));
    }
    let files = match mode {
        CopyMode::All => source::hash_all(root, "source_root")?,
        _ => {
            // Installed packages are the image's packages, not its source, even under the root.
            let listed: Vec<PathBuf> = loaded
                .unwrap_or_default()
                .iter()
                .filter(|p| {
                    !p.components().any(
                        |c| matches!(c, Component::Normal(n) if n == "site-packages" || n == "dist-packages"),
                    )
                })
                .cloned()
                .collect();
            source::hash_listed(root, &listed, "source_root")?
        }
    };
    add_files(out, "source", root, files);
    Ok(())
}

/// Every file that goes into the image, by key: the files the tag hashes, and the only files a
/// build context may contain. `loaded` is as for [`tag_inputs`].
pub fn selected_files(spec: &Spec, loaded: Option<&[PathBuf]>) -> Result<Selection> {
    spec.usable()?;
    let mut files = Selection::new();
    if let Some(req) = &spec.requirements {
        requirements_files(req, &mut files)?;
    }
    project_files(spec, &mut files)?;
    source_files(spec, loaded, &mut files)?;
    for (base, rel) in spec.copy_sources() {
        // Entries of the spec's folder stay in it; an absolute path elsewhere names its place itself.
        if base == spec.copy_root {
            source::check_inside(&base, &rel, "copy")?;
        }
        let path = base.join(&rel);
        if matches!(path.symlink_metadata(), Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
            let file = SourceFile {
                path: rel,
                kind: FileKind::Missing,
            };
            add_files(&mut files, "copy", &base, vec![file]);
            continue;
        }
        add_files(&mut files, "copy", &base, source::hash_path(&base, &rel, "copy")?);
    }
    Ok(files)
}

/// The error every builder gives for a selected file that is missing (a `copy` entry).
pub fn missing_file(f: &SelectedFile) -> Error {
    Error::source(
        "copy",
        &f.path,
        "does not exist; the image cannot be built without it: fix the path or create the file",
    )
}

/// The tag and every input it is derived from. `loaded` lists the files of the modules imported
/// now (for LOADED_MODULES mode); it is ignored in the other modes.
pub fn tag_inputs(spec: &Spec, loaded: Option<&[PathBuf]>) -> Result<TagInputs> {
    tag_inputs_of(spec, loaded, &selected_files(spec, loaded)?)
}

/// [`tag_inputs`] from the spec's [`selected_files`], read once by a caller that needs both.
pub fn tag_inputs_of(spec: &Spec, loaded: Option<&[PathBuf]>, selection: &Selection) -> Result<TagInputs> {
    spec.usable()?;
    let fields = field_digests(spec);
    let id_root = id_root_of(&fields);
    let mut buf = Vec::with_capacity(256);
    let files = selection
        .values()
        .map(|f| (f.key.clone(), file_digest(&f.file, &mut buf)))
        .collect();
    let base_image = match &spec.base_image {
        Some(BaseImage::Spec(base)) => Some(image_name(base, loaded)?),
        _ => None,
    };
    let root = tag_root(&id_root, &files, base_image.as_deref());
    let hash = encode_hash(&root);
    // A tag written in `name`, or a tag_format without `{spec_hash}`, fixes the tag.
    let tag = match (spec.name_tag(), &spec.tag_format) {
        (Some(fixed), _) => fixed.to_owned(),
        (None, Some(fmt)) => fmt.replace("{spec_hash}", &hash),
        (None, None) => hash,
    };
    Ok(TagInputs {
        id: encode_hash(&id_root),
        id_root,
        fields,
        files,
        base_image,
        root,
        tag,
    })
}

/// `registry/name:tag`, or `name:tag` without a registry.
pub fn image_name(spec: &Spec, loaded: Option<&[PathBuf]>) -> Result<String> {
    Ok(format!("{}:{}", spec.repository(), tag_inputs(spec, loaded)?.tag))
}
