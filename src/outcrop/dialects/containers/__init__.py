"""Body formats of the inference containers SageMaker users deploy, emulated on Outcrop engines.

Each dialect reads what the container's `POST /invocations` reads and writes the exact bytes
that container writes: Hugging Face TGI (`tgi`), LMI / DJL Serving (`lmi`) and the OpenAI
chat-completions format current LMI containers also accept (`openai`). `choice` picks one from
a request body when the endpoint does not name one.
"""
