"""Who is calling: OAuth2 bearer JWTs (RS256) from a configurable issuer, roles and organisations."""
