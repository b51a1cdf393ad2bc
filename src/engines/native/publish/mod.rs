//! Publishing what the build made, kept apart from making it (as ko splits `build` from
//! `publish`): [`registry`] pushes the blobs the registry lacks and the tag last, or writes an OCI
//! image layout without a registry; [`archive`] writes a `docker load` archive of one image.

pub mod archive;
pub mod registry;
