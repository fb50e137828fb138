int lth_echo_placeholder;
