# the two eps swapped: eps(c) + w (eps(none) - eps(c)) (w = 0 gives the conditional model)
/^static void guided_eps(/,/^}/ s|eu\[i\] + w \* (ec\[i\] - eu\[i\])|ec[i] + w * (eu[i] - ec[i])|
