"""archivestore: public imaging archives in one chunked Zarr v3 store."""
