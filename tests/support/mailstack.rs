//! Filled in by the send issue.
