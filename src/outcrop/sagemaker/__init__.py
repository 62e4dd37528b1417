"""SageMaker endpoints served by Outcrop: routing, sessions, capacity, backends, async results.

`services.sagemaker_runtime` is the wire-facing operation layer; the modules here hold what it
needs and no HTTP of the client side: `endpoints` (configuration → endpoints, variants,
containers, inference components, and the routing rules), `sessions` (stateful-session
table), `capacity` (instances bounding concurrency), `backends` (engine-backed containers and
real containers over HTTP) and `async_inference` (InvokeEndpointAsync's input and output
locations). The admin views are `services.sagemaker_admin`.
"""
