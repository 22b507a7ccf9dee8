# certs-undo (renew's rollback): never reached on CMS, renew-refuse stops
# first.
refuse renew is not supported on Cisco Meeting Server; use dbpki rotate (docs/cms.md)
