# the chain's own variance updated with a instead of a^2 (the simulation is right, its tolerance is not)
/^static int check_forward_sdes(/,/^}/ s/em_var = a \* a \* em_var + beta \* du;/em_var = a * em_var + beta * du;/
