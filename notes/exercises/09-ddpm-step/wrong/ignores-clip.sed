# ignores --clip-x0 (the issue: every case of the old grader ran clip 0, so this passed)
/^static void x0_hat_from_eps(/,/^}/ { /if (clip) v = /d }
