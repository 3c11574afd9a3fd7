# the backward keeps the one-head scale 1/sqrt(C): the forward is right, the gradient is not
/^static void attention_backward(/,/^}/ s|real scale = (real)(1 / sqrt((double)Ch));|real scale = (real)(1 / sqrt((double)C));|
