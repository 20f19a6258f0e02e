"""The REST API (FastAPI) over a workspace; later also the web console."""
