# sigma^2 with eta instead of eta^2 (right for eta = 0 and 1 only)
/^static void ddim_step(/,/^}/ s/double var = eta \* eta \* omabp/double var = eta * omabp/
