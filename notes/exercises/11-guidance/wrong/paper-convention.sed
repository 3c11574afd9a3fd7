# the paper's (1 + w) eps(c) - w eps(none) with the slide's w (w = 1 is then not the conditional model)
/^static void guided_eps(/,/^}/ s|eu\[i\] + w \* (ec\[i\] - eu\[i\])|(1 + w) * ec[i] - w * eu[i]|
