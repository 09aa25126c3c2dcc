"""Real servers started and stopped on loopback by the tests and the benchmarks: Samba's
smbd (:mod:`eval.servers.samba`) and Dovecot's IMAP (:mod:`eval.servers.dovecot`)."""
