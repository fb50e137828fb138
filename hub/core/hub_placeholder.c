int hub_core__placeholder;
