"""Helpers of manage.py, the operator's command-line tool.

manage.py holds the click commands; the work they do lives here: `common` (settings, errors,
the database), `admin` (tables, accounts, flows) and `testclient` (the MTP test client).
"""
