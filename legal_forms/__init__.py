"""Platform registry and the generators of preservation, disclosure and MLA requests."""
