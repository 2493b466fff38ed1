CRM_CONFIG=config.DevConfig
