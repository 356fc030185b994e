"""The kiosk (取号机): the issuing flow (flow.py, pure), the printed ticket (layout.py), the texts
(templates.py, templates.toml), the page's HTTP server (server.py, static/) and the app that ties
them to central and the node's ticket printer (app.py). docs/kiosk.md is the operator's guide."""
