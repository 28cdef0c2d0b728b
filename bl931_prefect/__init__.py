"""bl931 on Prefect 3 (`pip install bl931[prefect]`): flows for the facility's Prefect server.

`bl931_prefect.flows` holds `reconcile_pass`, `notify_new_scan` and `flight_check`;
`bl931_prefect.pass_report` renders a pass as the run's markdown artifact. The engine never
imports this package (nor prefect).
"""
