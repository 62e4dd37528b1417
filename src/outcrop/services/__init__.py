"""One module per AWS service: operations parse their input, hand generating calls to the
invocation layer (`outcrop.invocation`) and encode the answer."""
