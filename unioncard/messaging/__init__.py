"""Messages to members: one outbox for transactional messages and mailings, delivered by e-mail
(SMTP or a folder of .eml files) and SMS (an HTTP gateway), each chosen by a config string."""
