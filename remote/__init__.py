"""The Modal client side: the volume, spawning and watching calls, each step's call, and the rehearsal.

Prefect-free, so `flows -> tasks -> (motioncoach | remote)` reads from the layout: tasks are thin
Prefect wrappers, motioncoach is the domain, and remote talks to the deployed app
(deployments/modal_app.py) or, with --rehearse-volume, to its local stand-in (remote.rehearsal).
"""
