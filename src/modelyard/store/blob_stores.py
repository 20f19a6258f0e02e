"""Which blob store a workspace uses: ``<home>/blobs`` (the default) or S3-compatible storage (``blob_url``)."""

from __future__ import annotations

from modelyard.core.settings import Settings
from modelyard.store.blobs import BlobStore


def open_blob_store(settings: Settings) -> BlobStore:
    """The blob store ``settings`` name: ``<home>/blobs``, or S3-compatible storage when ``blob_url`` is set."""
    if settings.blob_url:
        from modelyard.store.s3blobs import S3BlobStore

        return S3BlobStore(settings.blob_url, settings.blobs_dir, endpoint_url=settings.s3_endpoint_url,
                           region=settings.s3_region, access_key_id=settings.s3_access_key_id,
                           secret_access_key=settings.s3_secret_access_key)
    return BlobStore(settings.blobs_dir)
