"""The Modal boundary, in one package: the app and its images (app, images, container), the names both sides
share (contract), and the client side: the connection (client), each step's calls (steps), who owns a
paid call (calls, paid, outcomes), the data dir's lease, the endpoint (serving) and the rehearsal that
stands in for Modal without an account (rehearsal, chosen from outside the app: the app never imports it).

Prefect-free, so `flows -> tasks -> (motioncoach | remote)` reads from the layout: tasks are thin Prefect
wrappers, motioncoach is the domain, and remote is everything that touches Modal.
"""
