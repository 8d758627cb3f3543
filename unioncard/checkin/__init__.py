"""Events on the server: congresses and conferences, their rosters, enrolled desks (stations),
the signed bundles the desks work from, and the check-in journal merged from every desk."""
