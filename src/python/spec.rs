//! `_core.Spec`: a validated spec held by the Python `ImageSpec`.

use super::convert::{from_value, raw_spec};
use super::options::BuildArgs;
use super::results::TagInputs;
use super::to_py_err;
use crate::identity;
use crate::spec::{yaml, BaseImage, Context, CopyMode, Spec as CoreSpec};
use crate::value::Value;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

#[pyclass(frozen, module = "imagespec._core", name = "Spec")]
pub struct Spec {
    pub inner: CoreSpec,
    id: String,
    canonical: String,
}

impl Spec {
    pub(crate) fn wrap(inner: CoreSpec) -> Spec {
        let id = identity::spec_id(&inner);
        let mut full = inner.to_map(false);
        full.insert("__force_push__".to_owned(), Value::Bool(inner.force_push));
        let canonical = data_encoding::HEXLOWER.encode(&Value::Map(full).digest());
        Spec { inner, id, canonical }
    }
}

fn context(python_version: String, base_dir: Option<PathBuf>) -> PyResult<Context> {
    let mut ctx = Context::here(python_version)?;
    if let Some(dir) = base_dir {
        ctx.base_dir = dir;
    }
    Ok(ctx)
}

fn loaded_ref(loaded: &Option<Vec<PathBuf>>) -> Option<&[PathBuf]> {
    loaded.as_deref()
}

#[pymethods]
impl Spec {
    #[new]
    #[pyo3(signature = (fields, *, python_version, base_dir=None, force_push=false))]
    fn new(
        fields: &Bound<'_, PyDict>,
        python_version: String,
        base_dir: Option<PathBuf>,
        force_push: bool,
    ) -> PyResult<Self> {
        let mut raw = raw_spec(fields).map_err(to_py_err)?;
        raw.force_push = force_push;
        let ctx = context(python_version, base_dir)?;
        CoreSpec::from_raw(raw, &ctx).map(Spec::wrap).map_err(to_py_err)
    }

    /// The fields with the constructor's keys (unset ones left out); `redact` hides URL credentials.
    #[pyo3(signature = (*, redact=false))]
    fn to_dict<'py>(&self, py: Python<'py>, redact: bool) -> PyResult<Bound<'py, PyAny>> {
        from_value(py, &Value::Map(self.inner.to_map(redact)))
    }

    fn to_yaml(&self) -> String {
        yaml::dump(&self.inner)
    }

    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    /// Digest of every normalised field and the force-push flag: the basis of `==` and `hash()`.
    #[getter]
    fn canonical(&self) -> &str {
        &self.canonical
    }

    #[getter]
    fn force_push(&self) -> bool {
        self.inner.force_push
    }

    /// (platforms, registry_config, insecure registries): what a registry check of its image uses.
    #[getter]
    fn check_options(&self) -> (Vec<String>, Option<String>, Vec<String>) {
        let (platforms, config, insecure) = crate::plan::check_key(&self.inner);
        (
            platforms,
            config.map(|p| p.to_string_lossy().into_owned()),
            insecure,
        )
    }

    #[getter]
    fn repository(&self) -> String {
        self.inner.repository()
    }

    /// The folder `copy` entries are relative to.
    #[getter]
    fn copy_root(&self) -> String {
        self.inner.copy_root.to_string_lossy().into_owned()
    }

    #[getter]
    fn effective_copy_mode(&self) -> &'static str {
        self.inner.effective_copy_mode().as_str()
    }

    /// Whether this spec or one of its base specs selects files by loaded modules.
    #[getter]
    fn uses_loaded_modules(&self) -> bool {
        let mut spec = &self.inner;
        loop {
            if spec.effective_copy_mode() == CopyMode::LoadedModules {
                return true;
            }
            match &spec.base_image {
                Some(BaseImage::Spec(base)) => spec = base,
                _ => return false,
            }
        }
    }

    #[getter]
    fn base_spec(&self) -> Option<Spec> {
        match &self.inner.base_image {
            Some(BaseImage::Spec(base)) => Some(Spec::wrap((**base).clone())),
            _ => None,
        }
    }

    fn with_force_push(&self, force_push: bool) -> Spec {
        Spec::wrap(CoreSpec {
            force_push,
            ..self.inner.clone()
        })
    }

    #[pyo3(signature = (loaded_modules=None))]
    fn tag(&self, py: Python<'_>, loaded_modules: Option<Vec<PathBuf>>) -> PyResult<String> {
        py.detach(|| identity::tag_inputs(&self.inner, loaded_ref(&loaded_modules)))
            .map(|t| t.tag)
            .map_err(to_py_err)
    }

    #[pyo3(signature = (loaded_modules=None))]
    fn image_name(&self, py: Python<'_>, loaded_modules: Option<Vec<PathBuf>>) -> PyResult<String> {
        py.detach(|| identity::image_name(&self.inner, loaded_ref(&loaded_modules)))
            .map_err(to_py_err)
    }

    /// The Dockerfile of this spec (docs/image-layout.md); reads the spec's files for its tag.
    #[pyo3(signature = (*, buildkit=true, engine="docker", **options))]
    fn dockerfile(
        &self,
        py: Python<'_>,
        buildkit: bool,
        engine: &str,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<String> {
        let opts = BuildArgs::read(py, "Spec.dockerfile()", options)?.options(buildkit, engine);
        super::interrupt::run(py, || crate::dockerfile::dockerfile(&self.inner, &opts))
    }

    /// The spec as its image's `dev.imagespec.spec` label shows it (JSON): name, registry, the
    /// identity fields as hashed, and the base spec's image name.
    #[pyo3(signature = (loaded_modules=None))]
    fn shown(&self, py: Python<'_>, loaded_modules: Option<Vec<PathBuf>>) -> PyResult<String> {
        py.detach(|| {
            let base = match &self.inner.base_image {
                Some(BaseImage::Spec(b)) => Some(identity::image_name(b, loaded_ref(&loaded_modules))?),
                _ => None,
            };
            Ok(crate::dockerfile::shown_spec(&self.inner, base.as_deref(), true))
        })
        .map_err(to_py_err)
    }

    /// The tree of sub-digests the tag is derived from, as a dict of hex strings.
    #[pyo3(signature = (loaded_modules=None))]
    fn tag_inputs(&self, py: Python<'_>, loaded_modules: Option<Vec<PathBuf>>) -> PyResult<TagInputs> {
        py.detach(|| identity::tag_inputs(&self.inner, loaded_ref(&loaded_modules)))
            .map(TagInputs::from)
            .map_err(to_py_err)
    }
}

/// A PEP 723 script's packages (its `dependencies`) and the `python_version` its
/// `requires-python` gives: `python_version` when it satisfies it, else `current` or the oldest
/// that does.
#[pyfunction]
#[pyo3(signature = (path, *, python_version, current))]
pub fn read_script(
    py: Python<'_>,
    path: PathBuf,
    python_version: Option<String>,
    current: String,
) -> PyResult<(Vec<String>, String)> {
    py.detach(|| {
        let meta = crate::spec::script::read(&path)?;
        let version = crate::spec::script::python_version(
            meta.requires_python.as_deref(),
            python_version.as_deref(),
            &current,
            &path.display().to_string(),
        )?;
        Ok((meta.dependencies, version))
    })
    .map_err(to_py_err)
}

/// Reads a YAML spec file; relative paths in it are resolved against the file's folder.
#[pyfunction]
#[pyo3(signature = (path, *, python_version))]
pub fn load_yaml(py: Python<'_>, path: PathBuf, python_version: String) -> PyResult<Spec> {
    let raw = py.detach(|| yaml::load(&path)).map_err(to_py_err)?;
    let dir = std::path::absolute(&path)?.parent().map(PathBuf::from);
    let ctx = context(python_version, dir)?;
    CoreSpec::from_raw(raw, &ctx).map(Spec::wrap).map_err(to_py_err)
}
