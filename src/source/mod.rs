//! Source selection and content hashing (placeholder, being written).
