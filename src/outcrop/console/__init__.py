"""The web console at `/_outcrop/console`: a ring of recent calls recorded by an interceptor
(`calls`), decoded on demand for a call's page (`assemble`), served with the built single-page
app by local routes (`routes`). The app's sources are in the repository's `console/` folder;
its build is committed under `static/` (docs/console.md)."""
