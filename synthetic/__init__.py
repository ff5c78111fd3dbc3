"""The function-composition task: vocabulary, functions, compositions, documents and datasets (numpy only)."""
