"""Key custody and signing behind one interface: software keystore and PKCS#11 (issue #3)."""
