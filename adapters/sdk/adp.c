int adp__placeholder;
