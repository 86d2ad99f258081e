"""The cashier screen: static ES modules and CSS served by the daemon."""
