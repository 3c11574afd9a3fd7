# forgets that rstd depends on x: drops the - xhat mean(dxhat xhat) term
/^static void groupnorm_group_backward(/,/^}/ s/ - mean_dxhat - xhat \* mean_dxhat_xhat)/ - mean_dxhat)/
