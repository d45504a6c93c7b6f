//! End-to-end tests of the s3-syncr command.
