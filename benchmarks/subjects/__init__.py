"""The measured subjects: bt-sync and its peers, each a function of a `CaseSpec` returning `Counts`."""
