"""Voilà configuration added by `twin dashboard` (JUPYTER_CONFIG_PATH names this folder).

The dashboard's access token comes from the environment `twin dashboard` gives Voilà
(TWIN_DASHBOARD_TOKEN, resolved from the settings), never from the command line, which every
user of the machine can read. With a token, a browser opens ``/?token=<token>`` once and then
holds a login cookie; requests without either get the login page (HTTP 403 on the API routes).
"""
import os

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

_token = os.environ.get("TWIN_DASHBOARD_TOKEN", "").strip()
if _token:
    c.Voila.token = _token
