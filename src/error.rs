//! One error type for the core; the Python layer maps each variant to an exception class.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field of a spec has a value that is not allowed.
    #[error("{field}: {message}")]
    Spec { field: String, message: String },

    /// A field's value that flytekit refuses too when a spec is made (a wrong type, a registry
    /// name). The message is whole and starts in flytekit's words ("packages must be a list of
    /// strings or None"), so that code matching flytekit's messages keeps matching.
    #[error("{message}")]
    Invalid { field: String, message: String },

    /// A keyword that is no field of a spec (a `TypeError` in Python, as for any function), with
    /// the spec's hint of the field meant (made where the spec's field list is known).
    #[error("ImageSpec() got an unexpected keyword argument '{name}'. {hint}")]
    UnknownField { name: String, hint: String },

    /// A file a spec is read from (a YAML spec, a script's metadata block) could not be read as
    /// one, at a line and column.
    #[error("{path}:{line}:{column}: {message}")]
    File {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },

    /// A file or folder the spec names (requirements, source_root, copy) is missing or unreadable.
    #[error("{field}: {}: {message}", path.display())]
    Source {
        field: String,
        path: PathBuf,
        message: String,
    },

    /// A string that is not an image reference.
    #[error(transparent)]
    Reference(#[from] crate::reference::ReferenceError),

    /// A registry check could not be set up (bad option, unreadable registry_config, no runtime).
    /// Never carries a credential.
    #[error("{0}")]
    Registry(String),

    /// A build context or Dockerfile cannot be made as asked (an option the engine cannot honour,
    /// a value a Dockerfile cannot hold, a file that changed while it was copied). Never carries a
    /// secret.
    #[error("{0}")]
    Build(String),
}

impl Error {
    pub fn spec(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Spec {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn source(field: impl Into<String>, path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Source {
            field: field.into(),
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn build(message: impl Into<String>) -> Self {
        Error::Build(message.into())
    }

    /// The field this error is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Spec { field, .. } | Error::Invalid { field, .. } | Error::Source { field, .. } => {
                Some(field)
            }
            Error::UnknownField { name, .. } => Some(name),
            Error::File { .. } | Error::Reference(_) | Error::Registry(_) | Error::Build(_) => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
