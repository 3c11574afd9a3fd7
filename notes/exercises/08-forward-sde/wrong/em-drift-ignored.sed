# the Euler-Maruyama step ignores the drift coefficient: both variants simulate the slide's literal SDE
/^static int check_forward_sdes(/,/^}/ s/a = 1 - drift \* beta \* du,/a = 1 - beta * du,/
