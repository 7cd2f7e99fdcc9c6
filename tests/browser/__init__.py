"""Helpers for ``tests/test_browser.py``: a throwaway JupyterLab server, the Chromium driver and
the notebooks the browser test opens. Kept out of the test file so each piece reads on its own:

- ``jupyterlab_server``  start JupyterLab on 127.0.0.1 with a random token, isolated settings
- ``lab_driver``         drive JupyterLab's UI with Playwright: open, Run All, move a slider, look
- ``notebooks``          the notebooks the test writes (with nbformat) into the server's root dir
"""
